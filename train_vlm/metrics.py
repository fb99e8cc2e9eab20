"""Classification metrics (scikit-learn): confusion matrix, per-class recall, balanced accuracy, ROC AUC.

Predictions may include an "unparseable" outcome. It is a column of the confusion matrix, never a row,
so an unparseable answer counts against the recall of its true class (it is wrong, never skipped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

UNPARSEABLE = "unparseable"


def _filled(y_pred: Sequence[str | None], classes: Sequence[str]) -> list[str]:
    """Predictions with None (or anything outside `classes`) replaced by UNPARSEABLE."""
    known = set(classes)
    return [pred if pred in known else UNPARSEABLE for pred in y_pred]


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    """Counts `[i, j]` of true class `classes[i]` predicted as `classes[j]`; the last column is unparseable.

    A prediction of None (or any value outside `classes`) lands in the unparseable column.
    Shape: `[len(classes), len(classes) + 1]`.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries but y_pred has {len(y_pred)}")
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        raise ValueError(f"true label(s) {unknown} not in {list(classes)}")
    labels = [*classes, UNPARSEABLE]
    if not len(y_true):
        return np.zeros((len(classes), len(labels)), dtype=np.int64)
    full = skm.confusion_matrix(list(y_true), _filled(y_pred, classes), labels=labels)
    return full[: len(classes)].astype(np.int64)


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each true class (NaN for a class with no examples). Shape: `[n_classes]`."""
    support = matrix.sum(axis=1)
    correct = np.diagonal(matrix[:, : matrix.shape[0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, correct / np.maximum(support, 1), np.nan)


def balanced_accuracy(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> float:
    """Mean recall over the classes of `classes` that occur in `y_true` (unparseable = wrong); NaN if none do.

    scikit-learn's macro recall over the present classes, which is its balanced accuracy with the
    unparseable outcome kept as a wrong answer.
    """
    present = [name for name in classes if name in set(y_true)]
    if not present:
        return float("nan")
    return float(skm.recall_score(list(y_true), _filled(y_pred, classes), labels=present, average="macro"))


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve for binary labels (1 = positive); NaN when either class is absent."""
    y_true = np.asarray(y_true, dtype=np.int64)  # [N]
    scores = np.asarray(scores, dtype=np.float64)  # [N]
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but scores has shape {scores.shape}")
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(y_true, scores))


def classification_report(
    y_true: Sequence[str],
    y_pred: Sequence[str | None],
    classes: Sequence[str],
    *,
    positive_class: str | None = None,
    scores: Sequence[float] | None = None,
) -> dict:
    """Everything `evaluate` reports for one group of images, as JSON-ready values.

    `scores` (higher = more `positive_class`) give the AUC; entries that are None or NaN are left out of it.
    """
    matrix = confusion_matrix(y_true, y_pred, classes)
    recalls = per_class_recall(matrix)
    n = int(matrix.sum())
    report = {
        "n": n,
        "classes": list(classes),
        "balanced_accuracy": json_float(balanced_accuracy(y_true, y_pred, classes)),
        "accuracy": json_float(np.trace(matrix[:, : len(classes)]) / n if n else float("nan")),
        "per_class_recall": {name: json_float(r) for name, r in zip(classes, recalls)},
        "support": {name: int(s) for name, s in zip(classes, matrix.sum(axis=1))},
        "confusion_matrix": {
            "rows_true": list(classes),
            "columns_predicted": [*classes, UNPARSEABLE],
            "counts": matrix.tolist(),
        },
        "n_unparseable": int(matrix[:, -1].sum()),
    }
    if scores is not None and positive_class is not None:
        labels, kept = scored_pairs(y_true, scores, positive_class)
        report["auc"] = json_float(roc_auc(labels, kept)) if len(kept) else None
        report["n_scored"] = len(kept)
    return report


def scored_pairs(
    y_true: Sequence[str], scores: Sequence[float | None], positive_class: str
) -> tuple[list[int], list[float]]:
    """(1 = positive labels, scores) for the entries whose score is a finite number."""
    pairs = [
        (int(truth == positive_class), float(score))
        for truth, score in zip(y_true, scores)
        if score is not None and np.isfinite(score)
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def json_float(value: float) -> float | None:
    """NaN is not JSON: report it as null."""
    value = float(value)
    return None if np.isnan(value) else value
