"""The OCTA appearance model: from noise-free vessel signal to an en-face decorrelation image.

Stages, in acquisition order (each differentiable in its parameters):

1. projection of the deeper plexus: its signal, blurred because it lies below the focus, is added to
   the superficial signal (the ILM-OPL slab integrates both); towards the fovea the retina thins and
   the slab holds fewer capillary layers, so the projected signal fades over ``parafovea_mm`` outside
   the FAZ border (by ``parafovea_dim`` at the border): a real FAZ has a soft, dark rim;
2. capillary-scale texture: slowly varying multiplicative flow heterogeneity;
3. decorrelation speckle: log-normal multiplicative noise per pixel, plus a noisy background;
4. point-spread function: Gaussian lateral blur;
5. signal fall-off towards the field edge (vignetting of the OCT beam), and slow illumination
   variation across the field (media opacities, defocus, tilt): a smooth log-normal gain field;
6. horizontal line artifacts: B-scans (image rows) corrupted by eye motion, brighter or darker;
7. display contrast: saturating 1 - exp(-gain x), then gamma.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .config import AppearanceParams, SimConfig

# Bounds on blur widths: they fix the static kernel sizes.
MAX_PSF_UM = 20.0
MAX_DEEP_BLUR_UM = 25.0
MAX_TEXTURE_UM = 60.0
TEXTURE_DOWNSAMPLE = 4  # the texture is smooth: drawn on a coarser grid and upsampled
ILLUMINATION_SCALE_MM = 0.4  # correlation length of the illumination gain field


def gaussian_blur(image: jax.Array, sigma_px, *, max_sigma_px: float) -> jax.Array:
    """Separable Gaussian blur of [H, W] with edge padding; the kernel is sized by ``max_sigma_px``."""
    half = max(1, int(math.ceil(3.0 * max_sigma_px)))
    taps = jnp.arange(-half, half + 1, dtype=jnp.float32)
    sigma = jnp.clip(sigma_px, 0.05, max_sigma_px)
    kernel = jnp.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / jnp.sum(kernel)
    height, width = image.shape
    padded = jnp.pad(image, ((half, half), (0, 0)), mode="edge")
    image = sum(kernel[i] * padded[i : i + height] for i in range(2 * half + 1))
    padded = jnp.pad(image, ((0, 0), (half, half)), mode="edge")
    return sum(kernel[i] * padded[:, i : i + width] for i in range(2 * half + 1))


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
    if faz_depth_mm is not None:
        outside_mm = jax.nn.relu(-faz_depth_mm)
        signal = signal * (1.0 - jnp.clip(ap.parafovea_dim, 0.0, 1.0) * jnp.exp(-outside_mm / jnp.maximum(ap.parafovea_mm, 1e-3)))
    coarse_um = px_um * TEXTURE_DOWNSAMPLE
    coarse = (-(-shape[0] // TEXTURE_DOWNSAMPLE), -(-shape[1] // TEXTURE_DOWNSAMPLE))
    texture = smooth_noise(k_tex, coarse, ap.texture_scale_um / coarse_um, max_sigma_px=MAX_TEXTURE_UM / coarse_um)
    texture = 1.0 + ap.texture_strength * jax.image.resize(texture, shape, "linear")
    signal = signal * jax.nn.relu(texture)
    speckle = jnp.exp(ap.speckle * jax.random.normal(k_speckle, shape) - 0.5 * ap.speckle**2)
    background = ap.background + ap.background_noise * jnp.abs(jax.random.normal(k_bg, shape))
    image = gaussian_blur(signal * speckle + background, ap.psf_sigma_um / px_um, max_sigma_px=MAX_PSF_UM / px_um)

    yy, xx = jnp.meshgrid(jnp.linspace(-1.0, 1.0, shape[0]), jnp.linspace(-1.0, 1.0, shape[1]), indexing="ij")
    image = image * (1.0 - ap.falloff * 0.5 * (xx**2 + yy**2))
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
    return jnp.clip(image, 1e-6, 1.0) ** ap.gamma
