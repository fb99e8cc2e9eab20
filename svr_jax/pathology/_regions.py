"""Irregular lesion regions (non-perfusion areas): a lobed outline roughened at the scale of capillary
territories.

A region is the level set {p : r(θ) - ρ + r0 η(p) > 0} around its centre (ρ, θ polar about it):
r(θ) = r0 · (1 + Σ_k α_k cos kθ + β_k sin kθ), k = 2..5, is the FAZ's border function (``svr_jax.faz``,
with α = a cos φ, β = -a sin φ), and η is a bounded random field, a sum of ``NOISE_WAVES`` plane waves of
0.12-0.35 mm wavelength (a few capillary meshes: the territory of a terminal arteriole) squashed into
±``NOISE_BOUND``. Real non-perfused areas are unions of lost capillary territories: their borders are
ragged, with bays and promontories, not the smooth lobes of r(θ) alone. The harmonics are evaluated
without any trigonometric call (cos kθ, sin kθ by recurrence from the unit direction), because the
depth runs at every pixel and every capillary for every region.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

N_HARMONICS = 4  # k = 2..5
MAX_RADIUS_MM = 0.45  # base radius r0
MAX_AMPLITUDE = 0.1  # per harmonic: the border stays within 1.4 r0 (static render windows)
NOISE_WAVES = 6
NOISE_BOUND = 0.4  # |η| < 0.4: with the harmonics the border stays within 1.8 r0 (static render windows)
MAX_EXTENT_MM = MAX_RADIUS_MM * (1 + N_HARMONICS * MAX_AMPLITUDE + NOISE_BOUND)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Regions:
    center_mm: jax.Array  # [R, 2]
    radius_mm: jax.Array  # [R] base radius r0
    cos_coef: jax.Array  # [R, 4] α_k, relative to r0
    sin_coef: jax.Array  # [R, 4] β_k
    depth: jax.Array  # [R] completeness in [0, 1]: 1 = every capillary inside is lost
    present: jax.Array  # [R] bool
    noise_wave: jax.Array  # [R, NOISE_WAVES, 2] wave vectors of η, rad/mm
    noise_phase: jax.Array  # [R, NOISE_WAVES]
    noise_sd: jax.Array  # [R] standard deviation of η before the bound (0: the smooth outline r(θ))

    @property
    def capacity(self) -> int:
        return self.radius_mm.shape[-1]


def _border_radius(regions: Regions, c1: jax.Array, s1: jax.Array) -> jax.Array:
    """r(θ) [R, ...] from cos θ, sin θ [R, ...] (region axis first: it vectorises best)."""
    coef = lambda a: a.reshape(a.shape[:1] + (1,) * (c1.ndim - 1))  # noqa: E731 - [R] -> [R, 1, ...]
    c, s = c1, s1
    harmonics = 0.0
    for k in range(N_HARMONICS):  # (cos kθ, sin kθ) for k = 2..5 by the angle-addition recurrence
        c, s = c * c1 - s * s1, s * c1 + c * s1
        harmonics = harmonics + coef(regions.cos_coef[:, k]) * c + coef(regions.sin_coef[:, k]) * s
    return coef(regions.radius_mm) * (1.0 + harmonics)


def border_radius_mm(regions: Regions, direction: jax.Array) -> jax.Array:
    """r(θ) [R, ...] for unit directions [R, ..., 2] (x, y)."""
    return _border_radius(regions, direction[..., 0], direction[..., 1])


def signed_depth_mm(regions: Regions, points_mm: jax.Array) -> jax.Array:
    """[R, ...]: how far inside each region's border the points [..., 2] lie (negative outside)."""
    # x and y apart: a trailing axis of 2 vectorises badly on a CPU.
    center = lambda i: regions.center_mm[:, i].reshape((-1,) + (1,) * (points_mm.ndim - 1))  # noqa: E731
    dx, dy = points_mm[..., 0][None] - center(0), points_mm[..., 1][None] - center(1)
    rho = jnp.sqrt(dx * dx + dy * dy + 1e-12)
    return _border_radius(regions, dx / rho, dy / rho) - rho + regions.radius_mm.reshape(center(0).shape) * _roughness(regions, dx, dy)


def _roughness(regions: Regions, dx: jax.Array, dy: jax.Array) -> jax.Array:
    """η [R, ...] at offsets (dx, dy) [R, ...] from each region's centre."""
    coef = lambda a: a.reshape(a.shape[:1] + (1,) * (dx.ndim - 1))  # noqa: E731
    total = 0.0
    for m in range(NOISE_WAVES):
        wave = regions.noise_wave[:, m]
        total = total + jnp.cos(coef(wave[:, 0]) * dx + coef(wave[:, 1]) * dy + coef(regions.noise_phase[:, m]))
    raw = coef(regions.noise_sd) * (2.0 / NOISE_WAVES) ** 0.5 * total
    return NOISE_BOUND * jnp.tanh(raw / NOISE_BOUND)


def region_masks(regions: Regions, pixel_centers_mm: jax.Array) -> jax.Array:
    """[R, H, W] bool: pixel centre inside a present region."""
    inside = signed_depth_mm(regions, pixel_centers_mm) > 0
    return inside & regions.present[:, None, None]


def border_point_mm(regions: Regions, angle: jax.Array, scale=1.0) -> jax.Array:
    """[R, 2]: the point at ``scale`` times the border radius in direction ``angle`` [R] of each region."""
    direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return regions.center_mm + (scale * border_radius_mm(regions, direction))[..., None] * direction


def make_regions(center_mm, radius_mm, amplitude, phase, depth, present, *, noise_wave=None, noise_phase=None,
                 noise_sd=0.0) -> Regions:
    """Regions [R] from the FAZ-style parameters, clipped to the static bounds; ``noise_*`` roughen the
    border (default: none, the smooth outline)."""
    amplitude = jnp.clip(amplitude, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    r = jnp.shape(radius_mm)[0]
    return Regions(
        center_mm=center_mm,
        radius_mm=jnp.clip(radius_mm, 0.01, MAX_RADIUS_MM),
        cos_coef=amplitude * jnp.cos(phase),
        sin_coef=-amplitude * jnp.sin(phase),
        depth=jnp.clip(depth, 0.0, 1.0),
        present=present,
        noise_wave=jnp.zeros((r, NOISE_WAVES, 2)) if noise_wave is None else noise_wave,
        noise_phase=jnp.zeros((r, NOISE_WAVES)) if noise_phase is None else noise_phase,
        noise_sd=jnp.broadcast_to(jnp.maximum(jnp.asarray(noise_sd, jnp.float32), 0.0), (r,)),
    )


def empty_regions(capacity: int) -> Regions:
    zeros = jnp.zeros((capacity,))
    return Regions(
        center_mm=jnp.zeros((capacity, 2)),
        radius_mm=zeros + 0.1,
        cos_coef=jnp.zeros((capacity, N_HARMONICS)),
        sin_coef=jnp.zeros((capacity, N_HARMONICS)),
        depth=zeros,
        present=jnp.zeros((capacity,), bool),
        noise_wave=jnp.zeros((capacity, NOISE_WAVES, 2)),
        noise_phase=jnp.zeros((capacity, NOISE_WAVES)),
        noise_sd=zeros,
    )
