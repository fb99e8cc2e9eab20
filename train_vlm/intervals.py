"""Bootstrap confidence intervals for balanced accuracy and ROC AUC.

Percentile bootstrap, stratified: every resample draws, with replacement, as many eyes of each stratum
(true class, and field of view when fields are pooled) as the evaluation had, so every resample has both
classes and the pooled resample keeps each field's share. With 23 DR eyes per OCTA-500 field one eye
moves balanced accuracy by about 0.02; the interval says how far the figure would move on another draw
of eyes like these.

The resamples are scored in numpy, all at once (thousands of scikit-learn calls take minutes on a small
CPU); `tests/vlm/test_intervals.py` checks them against scikit-learn's metrics resample by resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import json_float

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    confidence: float
    n_resamples: int

    def as_json(self) -> dict:
        return {
            "low": json_float(self.low),
            "high": json_float(self.high),
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
        }


def stratified_draws(strata: Sequence, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices `[n_resamples, N]`: each row draws each stratum's members with replacement, as many as it has.

    Columns are grouped by stratum (in order of first appearance), so a column always holds members of
    one stratum.
    """
    keys = [str(s) for s in strata]
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    blocks = [
        np.asarray(members)[rng.integers(0, len(members), size=(n_resamples, len(members)))]
        for members in groups.values()
    ]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((n_resamples, 0), dtype=np.int64)


def balanced_accuracies(correct: np.ndarray, class_ids: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Balanced accuracy of every resample. `correct` [N] bool, `class_ids` [N] int, `draws` [B, N] -> [B].

    The mean, over the classes present in a resample, of the fraction of that class answered right.
    """
    hits = correct[draws]  # [B, N]
    drawn = class_ids[draws]  # [B, N]
    recalls = []
    for class_id in np.unique(class_ids):
        in_class = drawn == class_id
        count = in_class.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(count > 0, (hits & in_class).sum(axis=1) / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls, axis=1), axis=1) if recalls else np.full(len(draws), np.nan)


def aucs(scores: np.ndarray, positive: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample (ties count half). `scores` [N], `positive` [N] bool, `draws` [B, N] -> [B].

    Mann-Whitney form: the fraction of (positive, negative) pairs in the resample that the score orders
    right. NaN for a resample without both classes.
    """
    out = np.empty(len(draws))
    for row, draw in enumerate(draws):  # one [n_pos, n_neg] comparison at a time bounds memory
        pos, neg = scores[draw[positive[draw]]], scores[draw[~positive[draw]]]
        if not pos.size or not neg.size:
            out[row] = np.nan
            continue
        greater = (pos[:, None] > neg[None, :]).sum()
        ties = (pos[:, None] == neg[None, :]).sum()
        out[row] = (greater + 0.5 * ties) / (pos.size * neg.size)
    return out


def percentile_interval(values: np.ndarray, confidence: float) -> Interval:
    """The central `confidence` range of the finite bootstrap values (NaN when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return Interval(float("nan"), float("nan"), confidence, len(values))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(low), float(high), confidence, len(values))


def bootstrap_intervals(
    y_true: Sequence[str],
    y_pred: Sequence[str | None],
    *,
    positive_class: str,
    scores: Sequence[float | None] | None = None,
    strata: Sequence | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile intervals of balanced accuracy (and of AUC when `scores` are given).

    Args:
        y_true, y_pred: true and predicted classes (None = unparseable, counted wrong).
        positive_class: the class that a higher score means.
        scores: entries that are None or NaN are left out of the AUC (its resamples draw the scored eyes).
        strata: an extra grouping kept fixed in every resample (e.g. the field of view); the true class
            always is.
    """
    y_true = list(y_true)
    names = sorted(set(y_true))
    class_ids = np.asarray([names.index(truth) for truth in y_true], dtype=np.int64)
    extra = [None] * len(y_true) if strata is None else list(strata)
    keys = [(truth, group) for truth, group in zip(y_true, extra)]
    rng = np.random.default_rng(seed)
    correct = np.asarray([pred == truth for truth, pred in zip(y_true, y_pred)], dtype=bool)
    accuracy = balanced_accuracies(correct, class_ids, stratified_draws(keys, n_resamples, rng))
    out = {"balanced_accuracy": percentile_interval(accuracy, confidence)}
    if scores is not None:
        scored = [i for i, score in enumerate(scores) if score is not None and np.isfinite(score)]
        values = np.asarray([scores[i] for i in scored], dtype=np.float64)
        positive = np.asarray([y_true[i] == positive_class for i in scored], dtype=bool)
        draws = stratified_draws([keys[i] for i in scored], n_resamples, rng)
        out["auc"] = percentile_interval(aucs(values, positive, draws), confidence)
    return out
