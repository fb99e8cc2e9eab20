"""Scores for judging synthetic data against real scans: classification, segmentation, two-sample tests.

Host arrays (the models that produce the inputs run in JAX). Folds, logistic regression, balanced
accuracy and ROC AUC are scikit-learn's, the skeleton scikit-image's (the ``bench`` extra: the simulator
itself does not need them, so they are imported where used). Used by ``benchmarks/sim2real.py`` and
``benchmarks/realism.py``; ``tests/sim/test_metrics.py`` checks them against hand-computed values.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Indices of each of ``k`` folds; every class is spread evenly over the folds."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    return [test for _, test in split]


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, l2: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """L2-regularised logistic regression on features standardised with the training set's mean and
    spread (penalty 0.5 * l2 * |w|^2 on the weights, not the intercept); returns the decision function
    (logit; > 0 means class 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / l2, max_iter=1000))
    model.fit(np.asarray(features, np.float64), np.asarray(labels))
    return lambda q: model.decision_function(np.asarray(q, np.float64))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    """[[true negatives, false positives], [false negatives, true positives]] for labels 0/1."""
    from sklearn.metrics import confusion_matrix

    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    return confusion_matrix(t, p, labels=[False, True]).tolist()


def _both_classes(y_true: np.ndarray, what: str) -> np.ndarray:
    t = np.asarray(y_true).astype(bool)
    if t.all() or not t.any():
        raise ValueError(f"{what} needs both classes in y_true")
    return t


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of sensitivity and specificity (each class weighs the same, whatever its prevalence)."""
    from sklearn.metrics import balanced_accuracy_score

    t = _both_classes(y_true, "balanced accuracy")
    return float(balanced_accuracy_score(t, np.asarray(y_pred).astype(bool)))


def balanced_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (predict 1 where score > it) with the highest balanced accuracy on these labels:
    an operating point chosen on held-out data of the training distribution. Every cut between two
    distinct scores is tried; where several tie, the median of them."""
    t = _both_classes(y_true, "a threshold")
    values = np.unique(np.asarray(score, np.float64))
    cuts = np.concatenate([[values[0] - 1.0], 0.5 * (values[1:] + values[:-1]), [values[-1] + 1.0]])
    above = np.asarray(score, np.float64)[None, :] > cuts[:, None]  # [cuts, samples]
    accuracy = 0.5 * (above[:, t].mean(1) + (~above[:, ~t]).mean(1))
    return float(np.median(cuts[accuracy >= accuracy.max() - 1e-12]))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative
    (ties count one half)."""
    from sklearn.metrics import roc_auc_score

    t = _both_classes(y_true, "AUC")
    return float(roc_auc_score(t, np.asarray(score, np.float64)))


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """2 |P ∩ T| / (|P| + |T|) of two boolean masks (1.0 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * np.sum(p & t) / total)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Centre lines of thin structures (scikit-image's skeletonize): what clDice compares."""
    from skimage.morphology import skeletonize

    return skeletonize(np.asarray(mask, bool))


def cldice(pred: np.ndarray, target: np.ndarray) -> float:
    """Centre-line Dice (Shit et al., CVPR 2021): harmonic mean of topology precision |S(P) ∩ T| / |S(P)|
    and topology sensitivity |S(T) ∩ P| / |S(T)|, with S the skeleton."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    sp, st = skeleton(p), skeleton(t)
    if not sp.any() and not st.any():
        return 1.0
    precision = np.sum(sp & t) / max(sp.sum(), 1)
    sensitivity = np.sum(st & p) / max(st.sum(), 1)
    return 0.0 if precision + sensitivity == 0 else float(2 * precision * sensitivity / (precision + sensitivity))


# Distance bands from the field centre (mm) of ``circumferential_bias``: the parafovea to the 3 mm field's edge.
ORIENTATION_BANDS_MM = ((0.3, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, 1.5))


def circumferential_bias(images: np.ndarray, fov_mm: float, *, bands_mm=ORIENTATION_BANDS_MM,
                         gradient_px: float = 1.0, window_px: float = 3.0) -> np.ndarray:
    """[N, H, W] en-face images -> [N, len(bands_mm)]: how far the line structures in each distance band
    from the field centre run along circles round it (+1) rather than towards it (-1); 0 = no preference.

    The local orientation is the structure tensor's (gradients at ``gradient_px``, averaged over
    ``window_px``), each pixel weighted by its coherence; the score is the weighted mean of
    cos 2(gradient angle - radial angle): a line along a circle has its gradient radial. Real macular
    scans score clearly positive near the fovea (the parafoveal capillaries and the arcade branches curve
    round it)."""
    from scipy import ndimage

    images = np.asarray(images, np.float64)
    n, height, width = images.shape
    px_mm = fov_mm / width
    yy, xx = np.meshgrid((np.arange(height) - 0.5 * (height - 1)) * px_mm, (np.arange(width) - 0.5 * (width - 1)) * px_mm, indexing="ij")
    radial, rho = np.arctan2(yy, xx), np.hypot(xx, yy)
    out = np.zeros((n, len(bands_mm)))
    for i, image in enumerate(images):
        gx = ndimage.gaussian_filter(image, gradient_px, order=(0, 1))
        gy = ndimage.gaussian_filter(image, gradient_px, order=(1, 0))
        jxx, jyy, jxy = (ndimage.gaussian_filter(a, window_px) for a in (gx * gx, gy * gy, gx * gy))
        gradient_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
        coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-12)
        score = coherence * np.cos(2 * (gradient_angle - radial))
        for j, (lo, hi) in enumerate(bands_mm):
            band = (rho >= lo) & (rho < hi)
            out[i, j] = score[band].sum() / (coherence[band].sum() + 1e-12)
    return out


# Spatial frequencies (cycles per pixel) of ``spectral_anisotropy``: the capillary mesh's to the pixel's.
ANISOTROPY_FREQUENCIES = (0.05, 0.1, 0.2, 0.3, 0.45)


def spectral_anisotropy(images: np.ndarray, *, frequencies=ANISOTROPY_FREQUENCIES, half_width: float = 0.025,
                        sector_deg: float = 15.0) -> np.ndarray:
    """[N, H, W] -> [N, len(frequencies)]: log power within ``sector_deg`` of the horizontal frequency axis
    minus that within it of the vertical axis, in rings |f| = frequency +- half_width (cycles/pixel; Hann
    window). > 0: more variation along rows than down columns, i.e. structures running vertically or
    blur along the slow axis; 0 = isotropic."""
    images = np.asarray(images, np.float64)
    n, height, width = images.shape
    window = np.hanning(height)[:, None] * np.hanning(width)[None]
    power = np.abs(np.fft.fft2((images - images.mean((1, 2), keepdims=True)) * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    radius, angle = np.hypot(fx, fy), np.degrees(np.arctan2(np.abs(fy), np.abs(fx)))
    out = np.zeros((n, len(frequencies)))
    for j, f in enumerate(frequencies):
        ring = np.abs(radius - f) <= half_width
        along_x, along_y = ring & (angle < sector_deg), ring & (angle > 90.0 - sector_deg)
        out[:, j] = np.log(power[:, along_x].mean(1)) - np.log(power[:, along_y].mean(1))
    return out
