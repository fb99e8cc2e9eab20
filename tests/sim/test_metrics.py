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


def test_circumferential_bias_of_rings_spokes_and_noise():
    """Concentric rings score +1, spokes -1, white noise 0 (on average over images), in every band."""
    n = 128
    yy, xx = np.meshgrid(np.arange(n) - 0.5 * (n - 1), np.arange(n) - 0.5 * (n - 1), indexing="ij")
    rings = np.cos(2 * np.pi * np.hypot(xx, yy) / 8.0)
    spokes = np.cos(48 * np.arctan2(yy, xx))  # 48 periods round: about 8 px apart at r = 60 px
    noise = np.random.default_rng(0).normal(size=(8, n, n))
    bands = ((0.8, 1.2), (1.2, 1.5))  # mm, in a 3 mm field of 128 px: 34-65 px from the centre
    got = metrics.circumferential_bias(np.stack([rings, spokes]), 3.0, bands_mm=bands)
    np.testing.assert_allclose(got[0], 1.0, atol=0.05)
    np.testing.assert_allclose(got[1], -1.0, atol=0.1)
    # One noise image scores within about +-0.1 of 0 (a few hundred independent orientations per band).
    np.testing.assert_allclose(metrics.circumferential_bias(noise, 3.0, bands_mm=bands).mean(0), 0.0, atol=0.06)


def test_spectral_anisotropy_of_stripes_blur_and_noise():
    """Vertical stripes (variation along rows) score > 0 at their frequency and horizontal ones < 0;
    noise blurred down columns only scores > 0 and more so at higher frequencies; white noise ~0."""
    from scipy import ndimage

    n = 128
    rng = np.random.default_rng(1)
    x = np.arange(n)
    vertical = np.tile(np.cos(2 * np.pi * 0.1 * x), (n, 1)) + 0.1 * rng.normal(size=(n, n))
    noise = rng.normal(size=(32, n, n))  # (the Hann window leaves a few dozen independent samples per sector)
    got = metrics.spectral_anisotropy(np.stack([vertical, vertical.T]), frequencies=(0.1,))
    assert got[0, 0] > 3 and got[1, 0] < -3
    blurred = metrics.spectral_anisotropy(ndimage.gaussian_filter1d(noise, 1.0, axis=1), frequencies=(0.1, 0.3)).mean(0)
    # A Gaussian of 1 px down columns takes (2 pi f)^2 off the log power along the vertical axis: 0.39 at
    # 0.1 cycles/px, 3.55 at 0.3 (less at 0.1, in a ring of 0.075-0.125 with few samples per image).
    assert 0.1 < blurred[0] < 0.6
    assert blurred[1] == pytest.approx((2 * np.pi * 0.3) ** 2, rel=0.2)
    np.testing.assert_allclose(metrics.spectral_anisotropy(noise).mean(0), 0.0, atol=0.1)
