"""Differentiable image statistics, computed by the same code on real and synthetic OCTA images.

``image_statistics(image, pixel_um=...)`` maps one en-face image [H, W] in [0, 1] to a dict of small
vectors, one per *group*. Scales are physical (µm, cycles/mm), so the 3 mm and 6 mm fields use the same
definitions at their own pixel sizes. Every statistic is smooth in the pixel values (soft histograms,
sigmoids instead of thresholds), so ``jax.grad`` flows from a distance between statistics back through
the renderer into ``SimParams``:

================  ======================================================================================
group             what it measures
================  ======================================================================================
histogram         soft intensity histogram, ``HIST_BINS`` Gaussian-kernel bins on [0, 1] (sums to 1)
quantiles         intensity quantiles 5/25/50/75/95 % (sort is differentiable); both on a 2x2-strided
                  pixel subset
spectrum          log10 radial power spectrum in ``SPECTRUM_BINS`` log-spaced bands, 1/fov .. Nyquist
local_std         local standard deviation at ``LOCAL_SCALES_UM``: its spatial mean and spread
oriented          second-derivative (Hessian) ridge energy at two scales, and the orientation coherence;
                  row vs column gradient energy and the spread of row means (motion line artifacts)
vessel            soft vessel density (pixels brighter than their 50 µm surroundings) and soft
                  large-vessel density (strong ridges at the large-vessel scale)
faz               soft FAZ area (dark, smooth region weighted by a window around the field centre, mm²)
                  and the central-to-global brightness ratio; periphery-to-centre brightness (fall-off)
================  ======================================================================================

``moment_distance`` compares a batch of synthetic statistics with precomputed real ones: per feature,
the squared difference of means in units of the real spread plus a smaller term on the log spreads,
averaged within each group, so no group dominates by its length. ``feature_vector`` is the fixed,
hand-crafted feature set of the realism benchmark's classifier two-sample test. A real summary made with
``summarize(..., joint=True)`` adds the group ``joint``: the feature vector's mean difference whitened by
the real eyes' (shrunk) feature correlation, i.e. the squared Mahalanobis distance per feature (an
unbiased estimate from the batch: the sampling variance of the batch mean is taken off). Per-feature
moments can all match while the features co-vary differently; a linear classifier finds exactly that.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

HIST_BINS = 24
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SPECTRUM_BINS = 12
LOCAL_SCALES_UM = (10.0, 25.0, 60.0)
RIDGE_SCALES_UM = (6.0, 15.0)  # capillary scale, large-vessel scale
BACKGROUND_UM = 50.0
FAZ_SMOOTH_UM = 20.0
FAZ_WINDOW_MM = 0.45  # Gaussian window (sigma) around the field centre where the FAZ is looked for
INTENSITY_STRIDE = 2  # histogram and quantiles from every other pixel per axis: the same estimate, a
# quarter of the cost (the sort behind the quantiles dominated a fit step's gradient)
STAT_GROUPS = ("histogram", "quantiles", "spectrum", "local_std", "oriented", "vessel", "faz")


def _gaussian_transfer(shape: tuple[int, int], sigma_px: float) -> jax.Array:
    """Fourier transfer function of a Gaussian blur on an rfft2 grid of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return jnp.asarray(np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fx**2 + fy**2)), jnp.float32)


class _Blurrer:
    """Gaussian blurs (and their derivatives) of one image at several scales, sharing one FFT.

    The image is reflect-padded by three of the largest sigmas, so the circular FFT does not wrap.
    """

    def __init__(self, image: jax.Array, max_sigma_px: float):
        self.height, self.width = image.shape
        self.pad = int(math.ceil(3.0 * max_sigma_px)) + 1
        padded = jnp.pad(image, self.pad, mode="reflect")
        self.shape = padded.shape
        self.spectrum = jnp.fft.rfft2(padded)

    def __call__(self, sigma_px: float, order: tuple[int, int] = (0, 0), spectrum=None) -> jax.Array:
        fy = np.fft.fftfreq(self.shape[0])[:, None]
        fx = np.fft.rfftfreq(self.shape[1])[None, :]
        transfer = np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fx**2 + fy**2)).astype(np.complex64)
        transfer = transfer * (2j * math.pi * fy) ** order[0] * (2j * math.pi * fx) ** order[1]
        spec = self.spectrum if spectrum is None else spectrum
        out = jnp.fft.irfft2(spec * jnp.asarray(transfer), s=self.shape)
        p = self.pad
        return out[p : p + self.height, p : p + self.width]

    def spectrum_of(self, image: jax.Array) -> jax.Array:
        """The padded spectrum of another image of the same size (e.g. the squared image), to blur with
        ``self(sigma, spectrum=...)`` at several scales from one FFT."""
        return jnp.fft.rfft2(jnp.pad(image, self.pad, mode="reflect"))


def _spectrum_masks(size_px: int, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """[B, H, W] band masks (normalised to mean 1 over the band) and the band centres in cycles/mm."""
    fov_mm = size_px * pixel_um / 1000.0
    f = np.fft.fftfreq(size_px, d=pixel_um / 1000.0)  # cycles/mm
    radius = np.hypot(f[:, None], f[None, :])
    nyquist = 0.5 / (pixel_um / 1000.0)
    edges = np.geomspace(2.0 / fov_mm, nyquist, SPECTRUM_BINS + 1)
    masks = np.stack([(radius >= lo) & (radius < hi) for lo, hi in zip(edges[:-1], edges[1:])]).astype(np.float32)
    masks /= np.maximum(masks.sum(axis=(1, 2), keepdims=True), 1.0)
    return masks, np.sqrt(edges[:-1] * edges[1:])


def spectrum_band_centres(size_px: int, pixel_um: float) -> np.ndarray:
    return _spectrum_masks(size_px, pixel_um)[1]


def image_statistics(image: jax.Array, *, pixel_um: float) -> dict[str, jax.Array]:
    """[H, W] image in [0, 1] -> {group: [k] float32}; see the module docstring for the groups."""
    image = jnp.asarray(image, jnp.float32)
    height, width = image.shape
    px_mm = pixel_um / 1000.0
    to_px = 1.0 / pixel_um
    max_sigma = max(LOCAL_SCALES_UM + (BACKGROUND_UM,)) * to_px
    blur = _Blurrer(image, max_sigma)
    stats = {}

    # Intensity.
    pixels = image[::INTENSITY_STRIDE, ::INTENSITY_STRIDE].reshape(-1)
    centres = (jnp.arange(HIST_BINS) + 0.5) / HIST_BINS
    width_bin = 1.0 / HIST_BINS
    weights = jnp.exp(-0.5 * ((pixels[:, None] - centres) / width_bin) ** 2)
    hist = jnp.sum(weights, axis=0)
    stats["histogram"] = hist / jnp.sum(hist)
    flat = jnp.sort(pixels)
    stats["quantiles"] = flat[jnp.asarray([int(q * (flat.shape[0] - 1)) for q in QUANTILES])]

    # Radial power spectrum (square images; non-square ones use the smaller side's crop).
    side = min(height, width)
    crop = image[:side, :side]
    masks, _ = _spectrum_masks(side, pixel_um)
    power = jnp.abs(jnp.fft.fft2(crop - jnp.mean(crop))) ** 2 / side**2
    stats["spectrum"] = jnp.log10(jnp.einsum("bhw,hw->b", jnp.asarray(masks), power) + 1e-8)

    # Local mean / variance at several scales.
    local = []
    squared = blur.spectrum_of(image**2)
    for scale_um in LOCAL_SCALES_UM:
        mean = blur(scale_um * to_px)
        var = blur(scale_um * to_px, spectrum=squared) - mean**2
        sd = jnp.sqrt(jax.nn.relu(var) + 1e-6)
        local += [jnp.mean(sd), jnp.std(sd)]
    stats["local_std"] = jnp.stack(local)

    # Oriented energies: Hessian ridges (bright vessels: the most negative eigenvalue), coherence.
    oriented, ridge_maps = [], []
    for scale_um in RIDGE_SCALES_UM:
        s = max(scale_um * to_px, 0.5)
        hyy, hxy, hxx = (s**2 * blur(s, o) for o in ((2, 0), (1, 1), (0, 2)))
        trace_half = 0.5 * (hxx + hyy)
        root = jnp.sqrt(0.25 * (hxx - hyy) ** 2 + hxy**2 + 1e-8)
        ridge = jax.nn.relu(-(trace_half - root))  # -lambda_min
        ridge_maps.append(ridge)
        coherence = jnp.sum(root) / (jnp.sum(jnp.abs(trace_half) + root) + 1e-6)
        oriented += [jnp.mean(ridge), jnp.std(ridge), coherence]
    gy, gx = blur(0.7, (1, 0)), blur(0.7, (0, 1))
    row_means = jnp.mean(image, axis=1)
    row_detail = row_means - jnp.convolve(row_means, jnp.ones(9) / 9.0, mode="same")
    oriented += [
        jnp.log(jnp.mean(gy**2) + 1e-8) - jnp.log(jnp.mean(gx**2) + 1e-8),
        jnp.log(jnp.std(row_detail[8:-8]) + 1e-5),
    ]
    stats["oriented"] = jnp.stack(oriented)

    # Soft vessel densities.
    background = blur(BACKGROUND_UM * to_px)
    vessel_density = jnp.mean(jax.nn.sigmoid((image - background - 0.03) / 0.02))
    large = ridge_maps[1]
    large_density = jnp.mean(jax.nn.sigmoid((large - 0.08) / 0.02))
    stats["vessel"] = jnp.stack([vessel_density, large_density])

    # Soft FAZ: dark smooth pixels near the field centre.
    smooth = blur(FAZ_SMOOTH_UM * to_px)
    global_mean = jnp.mean(image)
    dark = jax.nn.sigmoid((0.45 * global_mean - smooth) / (0.05 * global_mean + 1e-3))
    yy, xx = np.meshgrid((np.arange(height) + 0.5 - 0.5 * height) * px_mm, (np.arange(width) + 0.5 - 0.5 * width) * px_mm, indexing="ij")
    r2 = xx**2 + yy**2
    window = jnp.asarray(np.exp(-0.5 * r2 / FAZ_WINDOW_MM**2), jnp.float32)
    faz_area = jnp.sum(dark * window) * px_mm**2
    centre = jnp.asarray((r2 < 0.2**2).astype(np.float32))
    half = 0.5 * height * px_mm
    ring = jnp.asarray(((r2 > (0.75 * half) ** 2) & (r2 < half**2)).astype(np.float32))
    inner = jnp.asarray(((r2 > (0.35 * half) ** 2) & (r2 < (0.6 * half) ** 2)).astype(np.float32))
    centre_ratio = jnp.sum(image * centre) / jnp.sum(centre) / (global_mean + 1e-6)
    falloff_ratio = (jnp.sum(image * ring) / jnp.sum(ring)) / (jnp.sum(image * inner) / jnp.sum(inner) + 1e-6)
    stats["faz"] = jnp.stack([faz_area, centre_ratio, falloff_ratio])
    return stats


def batch_statistics(images: jax.Array, *, pixel_um: float) -> dict[str, jax.Array]:
    """[B, H, W] -> {group: [B, k]}."""
    return jax.vmap(lambda im: image_statistics(im, pixel_um=pixel_um))(images)


# Of the real feature correlation towards its diagonal (N ~ 100 eyes, F = 36). Small: real eyes obey
# near-exact relations between the fine-scale features (the correlation's 10 smallest eigenvalues are
# 0.00002-0.008 at 3 mm) and the classifier two-sample test separates real from synthetic along exactly
# those directions; at 0.1 the term weighed them 10-100x too little, at 0.002 the fit chased them at
# the cost of everything else.
JOINT_SHRINKAGE = 0.01


def summarize(stats: dict[str, jax.Array], *, joint: bool = False, joint_shrinkage: float = JOINT_SHRINKAGE) -> dict[str, dict[str, jax.Array]]:
    """{group: [N, k]} -> {group: {"mean": [k], "sd": [k]}}: the target a fit matches.

    ``joint=True`` adds the group ``"joint"``: the fixed feature vector's mean, spread and a whitening
    matrix (inverse Cholesky factor of its shrunk correlation across the real eyes), for the
    covariance-aware term of ``moment_distance``. ``joint_shrinkage``: the fraction of the correlation
    shrunk towards its diagonal; it floors the smallest eigenvalues, so it sets how much weight the
    term gives the tight directions (near-exact relations between real features)."""
    out = {g: dict(mean=jnp.mean(v, 0), sd=jnp.std(v, 0)) for g, v in stats.items()}
    if joint:
        features = np.asarray(feature_vector(stats), np.float64)
        mean, sd = features.mean(0), features.std(0)
        scale = np.asarray(spread_scale(dict(mean=mean, sd=sd)))
        corr = np.cov(((features - mean) / scale).T, bias=True)
        corr = (1.0 - joint_shrinkage) * corr + joint_shrinkage * np.diag(np.diag(corr))
        whitener = np.linalg.inv(np.linalg.cholesky(corr + 1e-6 * np.eye(len(mean))))
        out["joint"] = dict(mean=jnp.asarray(mean, jnp.float32), sd=jnp.asarray(sd, jnp.float32),
                            whitener=jnp.asarray(whitener, jnp.float32))
    return out


def spread_scale(real: dict) -> jax.Array:
    # A floor on the real spread: a feature that is (nearly) constant in the real set must not explode.
    # It is small: a feature that varies little across real eyes (ridge coherence varies by 0.1 %) still
    # separates real from synthetic when it is off by a few of its standard deviations.
    return real["sd"] + 0.002 * jnp.abs(real["mean"]) + 1e-4


def moment_distance(synthetic: dict[str, jax.Array], real: dict[str, dict], *, sd_weight: float = 0.25) -> dict[str, jax.Array]:
    """Per-group distance between synthetic statistics {group: [B, k]} and a real summary.

    mean_k ((mean_syn - mean_real) / sd_real)^2 + sd_weight * mean_k (log sd_syn - log sd_real)^2.
    Zero when the first two moments match; in units of the real set's own spread, so 1 is a
    one-standard-deviation miss.
    """
    out = {}
    if "joint" in real:
        # The classifier two-sample test separates real from synthetic along any direction of the
        # feature space, mostly along low-variance ones (correlated features); per-feature moments miss
        # those. Whitened by the real correlation: the squared Mahalanobis distance of the means, per feature.
        # Unbiased in the batch: the squared mean of B whitened samples overshoots the squared distance
        # of the means by their variance / B, and its gradient would shrink the synthetic spread (at
        # B = 16 that bias is ~0.035 for the 3 mm preset, a third of the distance it had left).
        target = real["joint"]
        features = feature_vector(synthetic)
        whitened = ((features - target["mean"]) / spread_scale(target)) @ target["whitener"].T
        batch = whitened.shape[0]
        sampling = jnp.var(whitened, 0, ddof=1) / batch if batch > 1 else 0.0
        out["joint"] = jnp.mean(jnp.mean(whitened, 0) ** 2 - sampling)
    for group, values in synthetic.items():
        target = real[group]
        scale = spread_scale(target)
        z = (jnp.mean(values, 0) - target["mean"]) / scale
        log_sd = jnp.log(jnp.std(values, 0) + 0.05 * scale) - jnp.log(target["sd"] + 0.05 * scale)
        out[group] = jnp.mean(z**2) + sd_weight * jnp.mean(log_sd**2)
    return out


def total_distance(per_group: dict[str, jax.Array], *, joint_weight: float = 1.0) -> jax.Array:
    """Weighted mean of the per-group distances; the ``joint`` term (if present) counts as
    ``joint_weight`` groups (the fit raises it to steer at what the classifier test sees)."""
    weights = {g: (joint_weight if g == "joint" else 1.0) for g in per_group}
    return sum(weights[g] * v for g, v in per_group.items()) / sum(weights.values())


def group_total(per_group: dict[str, jax.Array]) -> jax.Array:
    """``total_distance`` over the statistic groups alone, the joint term left out: the figure that
    reports compare, whether or not a fit used the joint term."""
    return total_distance({g: v for g, v in per_group.items() if g != "joint"})


# The classifier two-sample test's fixed feature set (a documented subset of the statistics).
FEATURE_GROUPS = ("quantiles", "spectrum", "local_std", "oriented", "vessel", "faz")


def feature_vector(stats: dict[str, jax.Array]) -> jax.Array:
    """{group: [..., k]} -> [..., F]: quantiles (5), spectrum bands (12), local std (6), oriented (8),
    vessel densities (2), FAZ (3): 36 features."""
    return jnp.concatenate([stats[g] for g in FEATURE_GROUPS], axis=-1)


def statistic_names(size_px: int, pixel_um: float) -> dict[str, list[str]]:
    """{group: names of its entries}, for every group of ``image_statistics`` (``STAT_GROUPS``): the
    statistics a fit matches, as its report names them."""
    names = dict(histogram=[f"histogram bin {(i + 0.5) / HIST_BINS:.3f}" for i in range(HIST_BINS)])
    names["quantiles"] = [f"intensity q{round(100 * q):02d}" for q in QUANTILES]
    names["spectrum"] = [f"power {f:.1f} cyc/mm" for f in spectrum_band_centres(size_px, pixel_um)]
    names["local_std"] = [f"local sd {scale:g} um: {what}" for scale in LOCAL_SCALES_UM for what in ("mean", "spread")]
    names["oriented"] = [f"ridge {scale:g} um: {what}" for scale in RIDGE_SCALES_UM for what in ("mean", "spread", "coherence")]
    names["oriented"] += ["row/column gradient energy", "row-mean spread"]
    names["vessel"] = ["vessel density", "large-vessel density"]
    names["faz"] = ["FAZ area", "FAZ centre brightness", "periphery/ring brightness"]
    return {g: names[g] for g in STAT_GROUPS}


def feature_names(size_px: int, pixel_um: float) -> list[str]:
    """Names of ``feature_vector``'s entries, in order (the spectrum bands by their centres at this field)."""
    by_group = statistic_names(size_px, pixel_um)
    return [name for g in FEATURE_GROUPS for name in by_group[g]]


def mahalanobis_terms(features: np.ndarray, real: dict) -> tuple[np.ndarray, np.ndarray]:
    """Which features carry the separation: synthetic features [N, F] against a ``summarize(...,
    joint=True)`` summary -> (z [F]: mean offsets in real spreads, terms [F]: z_i (C^-1 z)_i, which sum to
    the squared Mahalanobis distance of the means under the real shrunk correlation C; a term can be
    negative where a feature's offset partly cancels a correlated one's)."""
    target = {k: np.asarray(v, np.float64) for k, v in real["joint"].items()}
    z = (np.asarray(features, np.float64).mean(0) - target["mean"]) / np.asarray(spread_scale(target))
    whitener = target["whitener"]
    return z, z * (whitener.T @ (whitener @ z))
