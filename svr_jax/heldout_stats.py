"""Held-out statistic families: texture and structure measures the fit never sees.

``svr fit`` matches the statistics of ``svr_jax.stats`` (its report lists them by name). A realism
figure over those same statistics shows that the fit passed its own yardstick, no more. The families
here are a fixed, independent yardstick for ``benchmarks/realism.py``: other definitions, other code
(scikit-image and scipy on 8-bit images, no JAX, nothing from ``svr_jax.stats``), and never part of any
fit loss (``tests/sim/test_realism_protocol.py`` checks both). Do not add them to the fit, and do not
tune this list after seeing figures: a family added later is reported as added later.

Every image is taken as the 8-bit grey image that is stored (real PNGs, or what ``svr generate``
writes), and every scale is physical (µm), converted at the field's own pixel size, so the 3 mm and
6 mm fields use the same definitions.

==================  ==================================================================================
family              what it measures (``family_names`` lists every entry)
==================  ==================================================================================
glcm                grey-level co-occurrence (``skimage.feature.graycomatrix``, 32 levels, 4 angles
                    averaged) at ``GLCM_DISTANCES_UM``: contrast, dissimilarity, homogeneity, energy,
                    correlation; and the vertical/horizontal contrast ratio at each distance
lbp                uniform local binary patterns (``skimage.feature.local_binary_pattern``, 8 neighbours)
                    at ``LBP_RADII_UM``: the histogram of the 10 pattern codes
vesselness          Frangi vesselness (``skimage.filters.frangi``, bright ridges, fixed ``FRANGI_GAMMA``)
                    at each of ``FRANGI_SCALES_UM`` alone: mean, 90th and 99th percentile
histogram_shape     the 256-level intensity histogram's shape (``scipy.stats``): skewness, excess
                    kurtosis, entropy (bits), fraction of pixels at 0 and at 255, bimodality coefficient
skeleton            the Otsu-thresholded vessel map (after a ``SKELETON_SMOOTH_UM`` Gaussian) and its
                    skeleton (``skimage.morphology.skeletonize``): area fraction, skeleton length, branch
                    points, end points and connected pieces per mm², mean piece size (mm²)
==================  ==================================================================================
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("glcm", "lbp", "vesselness", "histogram_shape", "skeleton")
GLCM_LEVELS = 32
GLCM_DISTANCES_UM = (10.0, 30.0, 60.0)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
LBP_POINTS = 8
LBP_RADII_UM = (10.0, 30.0)
FRANGI_SCALES_UM = (7.0, 15.0, 30.0, 60.0)
FRANGI_GAMMA = 0.1  # fixed structureness scale (the default adapts per image and would hide contrast)
SKELETON_SMOOTH_UM = 10.0


def _px(length_um: float, pixel_um: float, floor: float) -> float:
    return max(length_um / pixel_um, floor)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8, as the PNGs are stored (``svr_jax.io.to_uint8``)."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def glcm(image8: np.ndarray, pixel_um: float) -> np.ndarray:
    from skimage.feature import graycomatrix, graycoprops

    levels = (image8.astype(np.uint16) * GLCM_LEVELS // 256).astype(np.uint8)
    distances = [int(round(_px(d, pixel_um, 1.0))) for d in GLCM_DISTANCES_UM]
    matrix = graycomatrix(levels, distances, GLCM_ANGLES, levels=GLCM_LEVELS, symmetric=True, normed=True)
    out = [graycoprops(matrix, prop).mean(1) for prop in GLCM_PROPS]  # each [distances]
    contrast = graycoprops(matrix, "contrast")
    out.append(np.log((contrast[:, 2] + 1e-6) / (contrast[:, 0] + 1e-6)))  # angle pi/2 (down the columns) vs 0 (along rows)
    return np.stack(out, 1).reshape(-1)  # distance-major


def lbp(image8: np.ndarray, pixel_um: float) -> np.ndarray:
    from skimage.feature import local_binary_pattern

    out = []
    for radius_um in LBP_RADII_UM:
        codes = local_binary_pattern(image8, LBP_POINTS, _px(radius_um, pixel_um, 1.0), method="uniform")
        hist = np.bincount(codes.astype(np.int64).reshape(-1), minlength=LBP_POINTS + 2)[: LBP_POINTS + 2]
        out.append(hist / hist.sum())
    return np.concatenate(out)


def vesselness(image8: np.ndarray, pixel_um: float) -> np.ndarray:
    from skimage.filters import frangi

    image = image8.astype(np.float64) / 255.0
    out = []
    for scale_um in FRANGI_SCALES_UM:
        response = frangi(image, sigmas=[_px(scale_um, pixel_um, 0.5)], gamma=FRANGI_GAMMA, black_ridges=False)
        out += [response.mean(), *np.percentile(response, (90.0, 99.0))]
    return np.asarray(out)


def histogram_shape(image8: np.ndarray, pixel_um: float) -> np.ndarray:
    from scipy import stats

    values = image8.reshape(-1).astype(np.float64)
    counts = np.bincount(image8.reshape(-1), minlength=256)
    skewness, kurtosis = stats.skew(values), stats.kurtosis(values)
    n = values.size
    bimodality = (skewness**2 + 1) / (kurtosis + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return np.asarray([skewness, kurtosis, stats.entropy(counts, base=2), counts[0] / n, counts[255] / n, bimodality])


def skeleton(image8: np.ndarray, pixel_um: float) -> np.ndarray:
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.morphology import skeletonize

    smooth = ndimage.gaussian_filter(image8.astype(np.float64), _px(SKELETON_SMOOTH_UM, pixel_um, 0.5))
    vessels = smooth > threshold_otsu(smooth)
    bones = skeletonize(vessels)
    neighbours = ndimage.convolve(bones.astype(np.int32), np.ones((3, 3), np.int32), mode="constant") - 1
    area_mm2 = vessels.size * (pixel_um / 1000.0) ** 2
    pieces = label(vessels, connectivity=2).max()
    return np.asarray([
        vessels.mean(),
        bones.sum() * pixel_um / 1000.0 / area_mm2,  # skeleton length, mm per mm²
        np.sum(bones & (neighbours >= 3)) / area_mm2,
        np.sum(bones & (neighbours == 1)) / area_mm2,
        pieces / area_mm2,
        vessels.sum() * (pixel_um / 1000.0) ** 2 / max(pieces, 1),
    ])


FAMILY_FUNCTIONS = dict(glcm=glcm, lbp=lbp, vesselness=vesselness, histogram_shape=histogram_shape, skeleton=skeleton)


def family_names() -> dict[str, list[str]]:
    """{family: names of its entries}, in the order ``image_features`` returns them."""
    names = dict(
        glcm=[f"glcm {d:g} um: {p}" for d in GLCM_DISTANCES_UM for p in GLCM_PROPS + ("vertical/horizontal contrast",)],
        lbp=[f"lbp {r:g} um: code {c}" for r in LBP_RADII_UM for c in range(LBP_POINTS + 2)],
        vesselness=[f"frangi {s:g} um: {w}" for s in FRANGI_SCALES_UM for w in ("mean", "p90", "p99")],
        histogram_shape=["grey skewness", "grey excess kurtosis", "grey entropy (bits)", "fraction at 0", "fraction at 255",
                         "bimodality coefficient"],
        skeleton=["vessel-map area fraction", "skeleton length (mm/mm2)", "branch points per mm2", "end points per mm2",
                  "vessel pieces per mm2", "mean piece area (mm2)"],
    )
    return {f: names[f] for f in FAMILIES}


def image_features(image: np.ndarray, *, pixel_um: float) -> dict[str, np.ndarray]:
    """[H, W] image in [0, 1] (quantised to 8 bits here, as stored) -> {family: [k] float64}."""
    image8 = to_uint8(image)
    return {f: np.asarray(FAMILY_FUNCTIONS[f](image8, pixel_um), np.float64) for f in FAMILIES}


def batch_features(images: np.ndarray, *, pixel_um: float) -> dict[str, np.ndarray]:
    """[N, H, W] -> {family: [N, k]}."""
    per_image = [image_features(image, pixel_um=pixel_um) for image in images]
    return {f: np.stack([p[f] for p in per_image]) for f in FAMILIES}
