"""Scores used by the sim-to-real and realism benchmarks, against values worked out by hand."""

import numpy as np
import pytest

from svr_jax import metrics


def test_confusion_and_balanced_accuracy():
    y = np.array([0, 0, 0, 0, 1, 1])
    p = np.array([0, 1, 0, 0, 1, 0])
    assert metrics.confusion(y, p) == [[3, 1], [1, 1]]
    assert metrics.balanced_accuracy(y, p) == pytest.approx(0.5 * (3 / 4 + 1 / 2))
    with pytest.raises(ValueError):
        metrics.balanced_accuracy(np.zeros(3), np.zeros(3))


def test_balanced_threshold_by_hand_and_against_a_grid():
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    score = np.array([0.0, 1.0, 2.0, 5.0, 3.0, 4.0, 6.0])
    # Cut at 2.5: all 3 positives and 3 of 4 negatives right (0.875); at 5.5: 1/3 and 4/4 (0.667).
    assert metrics.balanced_threshold(y, score) == pytest.approx(2.5)
    # Two cuts tie at 0.75 (0.5: sensitivity 1, specificity 1/2; 3.5: 1/2 and 1): their median.
    assert metrics.balanced_threshold(np.array([0, 0, 1, 1]), np.array([0.0, 3.0, 1.0, 4.0])) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    score = rng.normal(size=200) + 1.2 * y
    best = metrics.balanced_accuracy(y, score > metrics.balanced_threshold(y, score))
    grid = max(metrics.balanced_accuracy(y, score > t) for t in np.linspace(-4, 5, 4001))
    assert best == pytest.approx(grid) and best > metrics.balanced_accuracy(y, score > 10.0)
    with pytest.raises(ValueError):
        metrics.balanced_threshold(np.ones(3), np.arange(3.0))


def test_auc_with_ties():
    y = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert metrics.roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)  # all ties
    assert metrics.roc_auc(y, np.array([1, 2, 3, 4])) == 1.0


def test_stratified_folds_partition_each_class():
    labels = np.array([0] * 10 + [1] * 5)
    folds = metrics.stratified_folds(labels, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(15))
    assert all(np.sum(labels[f] == 1) == 1 and np.sum(labels[f] == 0) == 2 for f in folds)


def test_logistic_separates_and_standardises():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(3, 1, (50, 2))]) * [1.0, 1000.0]  # scales differ 1000x
    y = np.r_[np.zeros(50), np.ones(50)]
    decision = metrics.fit_logistic(x, y)
    assert np.mean((decision(x) > 0) == y) > 0.9


def test_dice_and_cldice():
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[5:8, 2:18] = True  # a bar 3 px thick, 16 px long
    b[5:8, 2:10] = True  # its left half
    assert metrics.dice(a, b) == pytest.approx(2 * 24 / (48 + 24))
    assert metrics.dice(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    # Skeleton of the bar: its centre row; the half bar's skeleton lies inside the bar (precision 1), and
    # covers about half of the bar's skeleton (sensitivity ~0.5).
    skel = metrics.skeleton(a)
    assert skel[6, 4:16].all() and not skel[5, 4:16].any() and not skel[7, 4:16].any()  # ends may fork to corners
    assert metrics.cldice(a, a) == 1.0
    cl = metrics.cldice(b, a)
    assert 0.55 < cl < 0.75
    # A gap in a vessel breaks its centre line: clDice drops more than Dice.
    broken = a.copy()
    broken[:, 9:11] = False
    assert metrics.cldice(broken, a) < 1.0 and metrics.dice(broken, a) > 0.85
