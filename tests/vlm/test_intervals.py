"""Bootstrap intervals: a case computed by hand, and the numpy resample scores against scikit-learn's metrics."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from train_vlm.intervals import aucs, balanced_accuracies, bootstrap_intervals, stratified_draws
from train_vlm.metrics import balanced_accuracy

CLASSES = ("no_dr", "dr")

# Two eyes per class. Stratified resampling draws each class's two eyes with replacement: both of the
# first (1/4), one of each (1/2) or both of the second (1/4).
#   Balanced accuracy: no_dr eyes (right, wrong), dr eyes (right, right). The no_dr recall is 1, 1/2 or 0
#   with probability 1/4, 1/2, 1/4, so BA = (recall + 1) / 2 is 1, 0.75, 0.5 with 1/4, 1/2, 1/4.
#   The 2.5th and 97.5th percentiles are therefore exactly 0.5 and 1.0.
Y_TRUE = ["no_dr", "no_dr", "dr", "dr"]
Y_PRED = ["no_dr", "dr", "dr", "dr"]
#   AUC: dr scores 0.9, 0.4; no_dr scores 0.6, 0.1 (point AUC 3/4: 0.4 < 0.6 is the one pair out of order).
#   dr draw {0.9, 0.9} (1/4): AUC 1. {0.9, 0.4} (1/2): 0.5, 0.75, 1 for no_dr draws {0.6, 0.6}, {0.6, 0.1},
#   {0.1, 0.1} (1/4, 1/2, 1/4). {0.4, 0.4} (1/4): 0, 0.5, 1 likewise. So P(AUC = 0, 0.5, 0.75, 1) =
#   1/16, 1/4, 1/4, 7/16 (mean 0.75), and the 95 % interval is [0, 1].
SCORES = [0.6, 0.1, 0.9, 0.4]
EXACT_BA = {0.5: 0.25, 0.75: 0.5, 1.0: 0.25}
EXACT_AUC = {0.0: 1 / 16, 0.5: 1 / 4, 0.75: 1 / 4, 1.0: 7 / 16}


def _frequencies(values: np.ndarray) -> dict[float, float]:
    keys, counts = np.unique(np.round(values, 6), return_counts=True)
    return {float(k): c / len(values) for k, c in zip(keys, counts)}


def test_hand_computed_intervals():
    intervals = bootstrap_intervals(Y_TRUE, Y_PRED, positive_class="dr", scores=SCORES, n_resamples=4000, seed=1)
    ba, auc = intervals["balanced_accuracy"], intervals["auc"]
    assert (ba.low, ba.high) == (0.5, 1.0)
    assert (auc.low, auc.high) == (0.0, 1.0)
    assert ba.confidence == 0.95 and ba.n_resamples == 4000


def test_hand_computed_bootstrap_distributions():
    rng = np.random.default_rng(0)
    draws = stratified_draws(Y_TRUE, 20000, rng)
    correct = np.asarray([t == p for t, p in zip(Y_TRUE, Y_PRED)])
    class_ids = np.asarray([CLASSES.index(t) for t in Y_TRUE])
    ba = _frequencies(balanced_accuracies(correct, class_ids, draws))
    assert set(ba) == set(EXACT_BA) and all(abs(ba[k] - p) < 0.015 for k, p in EXACT_BA.items())
    positive = np.asarray([t == "dr" for t in Y_TRUE])
    auc = _frequencies(aucs(np.asarray(SCORES), positive, draws))
    assert set(auc) == set(EXACT_AUC) and all(abs(auc[k] - p) < 0.015 for k, p in EXACT_AUC.items())


def test_draws_keep_every_stratum_count():
    strata = [("dr", 3), ("dr", 6), ("no_dr", 3), ("no_dr", 3), ("dr", 3), ("no_dr", 6)]
    draws = stratified_draws(strata, 50, np.random.default_rng(0))
    keys = [str(s) for s in strata]
    for draw in draws:
        assert sorted(keys[i] for i in draw) == sorted(keys)


def test_resample_scores_equal_scikit_learn():
    """The vectorised balanced accuracy and AUC of each resample equal scikit-learn's on that resample."""
    rng = np.random.default_rng(3)
    n = 60
    y_true = ["dr" if i < 15 else "no_dr" for i in range(n)]
    y_pred = [rng.choice(["dr", "no_dr", None]) for _ in range(n)]
    scores = np.round(rng.random(n), 1)  # rounding makes ties
    fov = [3 if i % 3 else 6 for i in range(n)]
    draws = stratified_draws(list(zip(y_true, fov)), 40, rng)
    correct = np.asarray([t == p for t, p in zip(y_true, y_pred)])
    class_ids = np.asarray([CLASSES.index(t) for t in y_true])
    positive = np.asarray([t == "dr" for t in y_true])
    fast_ba = balanced_accuracies(correct, class_ids, draws)
    fast_auc = aucs(scores, positive, draws)
    for draw, ba, auc in zip(draws, fast_ba, fast_auc):
        assert ba == pytest.approx(balanced_accuracy([y_true[i] for i in draw], [y_pred[i] for i in draw], CLASSES))
        assert auc == pytest.approx(roc_auc_score(positive[draw], scores[draw]))


def test_unscored_eyes_are_left_out_of_the_auc():
    scores = [*SCORES, None, float("nan")]
    intervals = bootstrap_intervals(
        [*Y_TRUE, "dr", "no_dr"], [*Y_PRED, "dr", "no_dr"], positive_class="dr", scores=scores, n_resamples=500
    )
    assert (intervals["auc"].low, intervals["auc"].high) == (0.0, 1.0)
