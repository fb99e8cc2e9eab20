"""The OCTA appearance model: from noise-free vessel signal to an en-face decorrelation image.

Stages, in acquisition order (each differentiable in its parameters):

1. projection of the deeper plexus: its signal, blurred because it lies below the focus, is added to
   the superficial signal (the ILM-OPL slab integrates both); towards the fovea the retina thins and
   the slab holds fewer capillary layers, so the projected signal fades over ``parafovea_mm`` outside
   the FAZ border (by ``parafovea_dim`` at the border): a real FAZ has a soft, dark rim; the thin slab
   also holds less static tissue, so the noise floor drops there too (``foveal_background_dim``): a
   real FAZ is nearly black; both radial profiles then take a fitted log gain, piecewise linear in the
   distance from the FAZ border (``border_gain_*``, ``border_floor_*``; knots ``BORDER_KNOTS_MM``):
   the eccentricity profile of real eyes (slab thickness, capillary layers and density) is not one
   exponential;
2. capillary-scale texture: slowly varying multiplicative flow heterogeneity;
3. decorrelation noise: with ``SimConfig.noise = "decorrelation"`` the device's measurement itself,
   drawn (``decorrelation``: each of ``decorrelation_looks`` depth samples in flow with probability 1 - exp(-signal),
   else static tissue decorrelated by the OCT noise ``oct_noise``); with ``"speckle"``, a log-normal multiplicative
   speckle (``speckle``); plus a noisy background (the noise floor);
4. point-spread function: Gaussian lateral blur, wider along the slow (row-to-row) axis by ``psf_aspect``,
   then the rest of the system transfer function: a smooth radial gain over spatial frequency
   (``mtf_*_cpmm``, log amplitude at knots from 1.5 to 50 cycles/mm; 0 = none);
5. signal fall-off towards the field edge (vignetting of the OCT beam: quadratic, ``falloff``, times a
   fitted piecewise-linear log gain over the distance from the field centre, ``field_gain_*``), and slow illumination
   variation across the field (media opacities, defocus, tilt): a smooth log-normal gain field;
6. horizontal line artifacts: B-scans (image rows) corrupted by eye motion, brighter or darker;
7. display contrast: saturating 1 - exp(-gain x), then gamma and a monotone tone curve (``tone_slope_*``,
   the device's grey-level mapping), then the 8-bit range: scaled to a white point and clipped (the
   brightest vessels saturate, as in exported scans); the white point (``SimConfig.white_point``) is fixed
   (``white_point``) or, as the exports stretch each scan, the image's own quantile
   (``saturated_fraction``); before it, the
   device's pixel-scale detail filter (``detail_filter``: bright and dark deviations from a 0.7 px
   neighbourhood scaled apart).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .config import WHITE_POINT_MODES, AppearanceParams, SimConfig
from .decorrelation import simulated_decorrelation

# Bounds on blur widths: they fix the static kernel sizes.
MAX_PSF_UM = 20.0
MAX_DEEP_BLUR_UM = 25.0
MAX_TEXTURE_UM = 60.0
# Knots of the radial log-gain profiles (signal, noise floor) around the FAZ: signed distance outside its
# border, mm (negative: inside); the last knot's gain is 0 and so is the gain beyond it.
BORDER_KNOTS_MM = (-0.15, 0.0, 0.1, 0.2, 0.4, 0.8, 1.2)
BORDER_GAIN_FIELDS = ("border_gain_in0p15_mm", "border_gain_0_mm", "border_gain_0p1_mm", "border_gain_0p2_mm",
                      "border_gain_0p4_mm", "border_gain_0p8_mm")
BORDER_FLOOR_FIELDS = tuple(name.replace("gain", "floor") for name in BORDER_GAIN_FIELDS)
# Knots of the field's vignetting residual: distance from the field centre in half-sides (the corners at
# 1.42); the gain is 0 at the centre.
FIELD_KNOTS = (0.0, 0.5, 0.75, 1.0, 1.42)
FIELD_GAIN_FIELDS = ("field_gain_0p5", "field_gain_0p75", "field_gain_1", "field_gain_1p42")
TEXTURE_DOWNSAMPLE = 4  # the texture is smooth: drawn on a coarser grid and upsampled
ILLUMINATION_SCALE_MM = 0.4  # correlation length of the illumination gain field
# The system transfer function beyond the Gaussian PSF (the OCT beam's true profile, A-scan sampling,
# the decorrelation computation's averaging window, en-face projection and display filtering): a
# log amplitude gain per knot frequency (cycles/mm), fitted, 0 = none.
MTF_KNOTS_CPMM = (1.5, 4.0, 8.0, 16.0, 32.0, 50.0)
MTF_FIELDS = ("mtf_1p5_cpmm", "mtf_4_cpmm", "mtf_8_cpmm", "mtf_16_cpmm", "mtf_32_cpmm", "mtf_50_cpmm")
MTF_PAD_PX = 16
# The display mapping from decorrelation to grey level is the device's (and its export's) own: a
# monotone tone curve, piecewise linear over len(TONE_FIELDS) equal input ranges of [0, 1], each with a
# fitted log slope (0 everywhere = the identity), normalised so that 0 -> 0 and 1 -> 1.
TONE_FIELDS = ("tone_slope_1", "tone_slope_2", "tone_slope_3", "tone_slope_4", "tone_slope_5")
# The neighbourhood of the detail filter: the device's own processing acts on its pixel grid, so pixels.
DETAIL_SIGMA_PX = 0.7


def gaussian_blur(image: jax.Array, sigma_px, *, max_sigma_px: float, aspect=1.0) -> jax.Array:
    """Separable Gaussian blur of [H, W] with edge padding; the kernel is sized by ``max_sigma_px``.

    ``aspect``: sigma along rows (y) over sigma along columns (x), at the same geometric mean."""
    half = max(1, int(math.ceil(3.0 * max_sigma_px)))
    taps = jnp.arange(-half, half + 1, dtype=jnp.float32)

    def kernel(sigma):
        k = jnp.exp(-0.5 * (taps / jnp.clip(sigma, 0.05, max_sigma_px)) ** 2)
        return k / jnp.sum(k)

    root = jnp.sqrt(jnp.maximum(aspect, 1e-3))
    k_y, k_x = kernel(sigma_px * root), kernel(sigma_px / root)
    height, width = image.shape
    padded = jnp.pad(image, ((half, half), (0, 0)), mode="edge")
    image = sum(k_y[i] * padded[i : i + height] for i in range(2 * half + 1))
    padded = jnp.pad(image, ((0, 0), (half, half)), mode="edge")
    return sum(k_x[i] * padded[:, i : i + width] for i in range(2 * half + 1))


def _field_vector(ap: AppearanceParams, names: tuple[str, ...]) -> jax.Array:
    """[len(names)] the named appearance fields, in order (the knots of the transfer and tone curves)."""
    return jnp.stack([jnp.asarray(getattr(ap, name), jnp.float32) for name in names])


def transfer_log_gain(ap: AppearanceParams, freq_cpmm: jax.Array) -> jax.Array:
    """Log amplitude gain of the system transfer function at spatial frequencies [cycles/mm]:
    piecewise linear in log frequency through ``MTF_KNOTS_CPMM``, constant beyond the end knots."""
    values = _field_vector(ap, MTF_FIELDS)
    return jnp.interp(jnp.log(jnp.maximum(freq_cpmm, 1e-3)), jnp.log(jnp.asarray(MTF_KNOTS_CPMM, jnp.float32)), values)


def apply_transfer(image: jax.Array, ap: AppearanceParams, pixel_um: float) -> jax.Array:
    """Filter [H, W] by the radial transfer function (the mean, DC, is kept); reflect-padded so the
    FFT's wrap-around does not mix opposite edges."""
    pad = MTF_PAD_PX
    padded = jnp.pad(image, pad, mode="reflect")
    height, width = padded.shape
    fy = np.fft.fftfreq(height, d=pixel_um / 1000.0)[:, None]
    fx = np.fft.rfftfreq(width, d=pixel_um / 1000.0)[None, :]
    gain = jnp.exp(transfer_log_gain(ap, jnp.asarray(np.hypot(fy, fx), jnp.float32)))
    gain = gain.at[0, 0].set(1.0)
    out = jnp.fft.irfft2(jnp.fft.rfft2(padded) * gain, s=(height, width))
    return out[pad:-pad, pad:-pad]


def knot_profile(ap: AppearanceParams, names: tuple[str, ...], knots: tuple[float, ...], x: jax.Array, *, zero_at_start: bool = False) -> jax.Array:
    """Gain exp(piecewise-linear log gain through ``knots``) at ``x``: the named fields at the knots,
    0 at the last knot (or, ``zero_at_start``, at the first), constant beyond the ends."""
    zero = jnp.zeros(1)
    values = jnp.concatenate([zero, _field_vector(ap, names)] if zero_at_start else [_field_vector(ap, names), zero])
    return jnp.exp(jnp.interp(x, jnp.asarray(knots, jnp.float32), values))


def tone_curve(image: jax.Array, ap: AppearanceParams) -> jax.Array:
    """Monotone piecewise-linear map of [0, 1] onto itself with the log slopes ``tone_slope_*``."""
    slopes = jnp.exp(_field_vector(ap, TONE_FIELDS))
    width = 1.0 / len(TONE_FIELDS)
    starts = jnp.arange(len(TONE_FIELDS), dtype=jnp.float32) * width
    rise = slopes * jnp.clip(image[..., None] - starts, 0.0, width)
    return jnp.sum(rise, -1) / (jnp.sum(slopes) * width)


def detail_filter(image: jax.Array, ap: AppearanceParams) -> jax.Array:
    """Scale each pixel's bright and dark deviations from its ``DETAIL_SIGMA_PX`` Gaussian neighbourhood by
    ``detail_bright_gain`` and ``detail_dark_gain``. The balance of peaks and pits in the finest texture
    is the device's (its despeckling and display filtering are not published), not what blur and speckle
    leave; real scans keep a near-exact relation between the 6 µm ridge response, the 10 and 60 µm local
    contrast and the highest spectrum bands, which moves with these gains and with little else (docs/design.md;
    trials in docs/experiments/fitting.md), so their net effect is fitted. Gains of exactly 1 return ``image`` unchanged,
    bit for bit."""
    detail = image - gaussian_blur(image, DETAIL_SIGMA_PX, max_sigma_px=DETAIL_SIGMA_PX)
    return image + (ap.detail_bright_gain - 1.0) * jax.nn.relu(detail) - (ap.detail_dark_gain - 1.0) * jax.nn.relu(-detail)


def smooth_noise(key: jax.Array, shape: tuple[int, int], sigma_px, *, max_sigma_px: float) -> jax.Array:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma_px``."""
    field = gaussian_blur(jax.random.normal(key, shape), sigma_px, max_sigma_px=max_sigma_px)
    return field / (jnp.std(field) + 1e-6)


def apply_appearance(
    key: jax.Array, ap: AppearanceParams, superficial: jax.Array, deep: jax.Array, cfg: SimConfig, faz_depth_mm: jax.Array | None = None
) -> jax.Array:
    """[H, W] signals (cross-section weighted vessel signal) -> OCTA image in [0, 1].

    ``faz_depth_mm`` [H, W]: signed depth of each pixel inside the FAZ border (negative outside); None:
    no parafoveal fading."""
    px_um = cfg.field.pixel_um
    shape = superficial.shape
    k_tex, k_speckle, k_bg, k_rows, k_row_amp = jax.random.split(key, 5)

    signal = superficial + ap.deep_signal * gaussian_blur(deep, ap.deep_blur_um / px_um, max_sigma_px=MAX_DEEP_BLUR_UM / px_um)
    thin_slab = jnp.zeros(shape)  # 1 at and inside the FAZ border, 0 far from it
    floor_profile = 1.0
    if faz_depth_mm is not None:
        thin_slab = jnp.exp(-jax.nn.relu(-faz_depth_mm) / jnp.maximum(ap.parafovea_mm, 1e-3))
        signal = signal * (1.0 - jnp.clip(ap.parafovea_dim, 0.0, 1.0) * thin_slab)
        outside_mm = -faz_depth_mm
        signal = signal * knot_profile(ap, BORDER_GAIN_FIELDS, BORDER_KNOTS_MM, outside_mm)
        floor_profile = knot_profile(ap, BORDER_FLOOR_FIELDS, BORDER_KNOTS_MM, outside_mm)
    coarse_um = px_um * TEXTURE_DOWNSAMPLE
    coarse = (-(-shape[0] // TEXTURE_DOWNSAMPLE), -(-shape[1] // TEXTURE_DOWNSAMPLE))
    texture = smooth_noise(k_tex, coarse, ap.texture_scale_um / coarse_um, max_sigma_px=MAX_TEXTURE_UM / coarse_um)
    texture = 1.0 + ap.texture_strength * jax.image.resize(texture, shape, "linear")
    signal = signal * jax.nn.relu(texture)
    if cfg.noise == "decorrelation":
        # The flow fraction: p ~ signal while small, every look in flow when large (a large vessel).
        flow_fraction = 1.0 - jnp.exp(-jax.nn.relu(signal))
        flow = simulated_decorrelation(k_speckle, flow_fraction, ap.oct_noise, cfg.decorrelation_looks)
    else:
        flow = signal * jnp.exp(ap.speckle * jax.random.normal(k_speckle, shape) - 0.5 * ap.speckle**2)
    background = ap.background + ap.background_noise * jnp.abs(jax.random.normal(k_bg, shape))
    # Static tissue's decorrelation, summed over the slab's depth: it thins to nothing at the foveola.
    background = background * (1.0 - jnp.clip(ap.foveal_background_dim, 0.0, 1.0) * thin_slab) * floor_profile
    image = gaussian_blur(flow + background, ap.psf_sigma_um / px_um, max_sigma_px=MAX_PSF_UM / px_um, aspect=ap.psf_aspect)
    image = apply_transfer(image, ap, px_um)

    yy, xx = jnp.meshgrid(jnp.linspace(-1.0, 1.0, shape[0]), jnp.linspace(-1.0, 1.0, shape[1]), indexing="ij")
    image = image * (1.0 - ap.falloff * 0.5 * (xx**2 + yy**2))
    image = image * knot_profile(ap, FIELD_GAIN_FIELDS, FIELD_KNOTS, jnp.sqrt(xx**2 + yy**2), zero_at_start=True)
    # Its own key (folded in, not split) so the other stages' random streams are unchanged.
    coarse_px = max(4, int(round(ILLUMINATION_SCALE_MM * 1000.0 / px_um / 4)))  # 4 grid cells per correlation length
    grid = (-(-shape[0] // coarse_px) + 1, -(-shape[1] // coarse_px) + 1)
    gain_field = smooth_noise(jax.random.fold_in(key, 6), grid, 4.0, max_sigma_px=4.0)
    image = image * jnp.exp(ap.illumination_sd * jax.image.resize(gain_field, shape, "cubic") - 0.5 * ap.illumination_sd**2)

    # Rows hit by motion: a soft (differentiable in the rate) Bernoulli per row.
    hit = jax.nn.sigmoid((ap.line_artifact_rate - jax.random.uniform(k_rows, (shape[0],))) / 0.002)
    amplitude = ap.line_artifact_strength * jax.random.normal(k_row_amp, (shape[0],))
    image = image * (1.0 + hit * amplitude)[:, None] + (hit * jnp.abs(amplitude) * 0.3)[:, None]

    image = 1.0 - jnp.exp(-jnp.maximum(ap.gain, 1e-3) * jax.nn.relu(image))
    image = detail_filter(tone_curve(jnp.clip(image, 1e-6, 1.0) ** ap.gamma, ap), ap)
    # 8-bit export scales the display range to a white point and clips: the brightest vessels saturate.
    return jnp.clip(image / white_point(image, ap, cfg.white_point), 0.0, 1.0)


def white_point(image: jax.Array, ap: AppearanceParams, mode: str) -> jax.Array:
    """The display value that the export maps to 255 (``SimConfig.white_point``): ``ap.white_point``
    ("fixed"), or the image's own ("percentile"): its k-th brightest pixel, k = round(f x pixels) (at
    least 1), f = ``ap.saturated_fraction``. OCTA-500's exports stretch every scan so that its top 1 %
    saturates: 1.04 +- 0.02 % of a 3 mm scan's pixels are 255 (1.09 +- 0.05 % at 6 mm), in every eye,
    whatever its brightness; a fixed white point saturates 0 to 2 %."""
    if mode == "fixed":
        return jnp.maximum(ap.white_point, 0.5)
    if mode not in WHITE_POINT_MODES:
        raise ValueError(f"white_point must be one of {WHITE_POINT_MODES}, got {mode!r}")
    flat = image.reshape(-1)
    frozen = jax.lax.stop_gradient(flat)
    k = jnp.maximum(jnp.round(jnp.clip(ap.saturated_fraction, 0.0, 1.0) * flat.shape[0]), 1.0)

    # Bisection on the threshold (a count per step; a sort of the image costs 35x more): afterwards
    # at least k pixels lie above lo and fewer than k above hi, hi - lo at float resolution.
    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        enough = jnp.sum(frozen > mid) >= k
        return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid)

    lo, _ = jax.lax.fori_loop(0, 32, halve, (jnp.min(frozen) - 1e-6, jnp.max(frozen)))
    # The k-th brightest pixel itself (the smallest above lo): the gradient reaches that pixel, as a sort's would.
    kth = jnp.min(jnp.where(frozen > jax.lax.stop_gradient(lo), flat, jnp.inf))
    return jnp.maximum(kth, 1e-3)
