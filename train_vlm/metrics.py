"""Classification metrics in plain numpy: confusion matrix, per-class recall, balanced accuracy, ROC AUC.

Predictions may include an "unparseable" outcome. It is a column of the confusion matrix, never a row,
so an unparseable answer counts against the recall of its true class (it is wrong, never skipped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNPARSEABLE = "unparseable"


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    """Counts `[i, j]` of true class `classes[i]` predicted as `classes[j]`; the last column is unparseable.

    A prediction of None (or any value outside `classes`) lands in the unparseable column.
    Shape: `[len(classes), len(classes) + 1]`.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries but y_pred has {len(y_pred)}")
    index = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes) + 1), dtype=np.int64)
    for truth, pred in zip(y_true, y_pred):
        if truth not in index:
            raise ValueError(f"true label {truth!r} is not one of {list(classes)}")
        matrix[index[truth], index.get(pred, len(classes))] += 1
    return matrix


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each true class (NaN for a class with no examples). Shape: `[n_classes]`."""
    support = matrix.sum(axis=1)
    correct = np.diagonal(matrix[:, : matrix.shape[0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, correct / np.maximum(support, 1), np.nan)


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes that have at least one example (NaN if none do)."""
    recalls = per_class_recall(matrix)
    present = recalls[~np.isnan(recalls)]
    return float(present.mean()) if present.size else float("nan")


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve for binary labels (1 = positive), ties counted as half.

    Equals the probability that a random positive scores above a random negative (Mann-Whitney U).
    NaN when either class is absent.
    """
    y_true = np.asarray(y_true, dtype=np.int64)  # [N]
    scores = np.asarray(scores, dtype=np.float64)  # [N]
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but scores has shape {scores.shape}")
    positives, negatives = scores[y_true == 1], scores[y_true == 0]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    # Midranks handle ties: U = sum of positive ranks - n_pos (n_pos + 1) / 2.
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < scores.size:
        stop = start
        while stop + 1 < scores.size and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = 0.5 * (start + stop) + 1.0
        start = stop + 1
    u_statistic = ranks[y_true == 1].sum() - positives.size * (positives.size + 1) / 2.0
    return float(u_statistic / (positives.size * negatives.size))


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
        "balanced_accuracy": _json_float(balanced_accuracy(matrix)),
        "accuracy": _json_float(np.trace(matrix[:, : len(classes)]) / n if n else float("nan")),
        "per_class_recall": {name: _json_float(r) for name, r in zip(classes, recalls)},
        "support": {name: int(s) for name, s in zip(classes, matrix.sum(axis=1))},
        "confusion_matrix": {
            "rows_true": list(classes),
            "columns_predicted": [*classes, UNPARSEABLE],
            "counts": matrix.tolist(),
        },
        "n_unparseable": int(matrix[:, -1].sum()),
    }
    if scores is not None and positive_class is not None:
        pairs = [
            (int(truth == positive_class), float(score))
            for truth, score in zip(y_true, scores)
            if score is not None and np.isfinite(score)
        ]
        report["auc"] = _json_float(roc_auc([p[0] for p in pairs], [p[1] for p in pairs])) if pairs else None
        report["n_scored"] = len(pairs)
    return report


def _json_float(value: float) -> float | None:
    """NaN is not JSON: report it as null."""
    value = float(value)
    return None if np.isnan(value) else value
