"""The foveal avascular zone (FAZ): an irregular star-shaped region around the fovea.

Its border is a radius function of angle, r(θ) = r0 · (1 + Σ_k a_k cos(kθ + φ_k)) for k = 2..5, with
r0 set so that the *mean* area matches the requested area. Harmonic amplitudes fall as 1/k, giving the
lobulated, slightly polygonal outline of real FAZs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

HARMONICS = jnp.arange(2, 6, dtype=jnp.float32)  # k = 2..5


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Faz:
    center_mm: jax.Array  # [2] fovea centre
    radius_mm: jax.Array  # [] base radius r0
    amplitude: jax.Array  # [4] relative amplitudes a_k
    phase: jax.Array  # [4] phases φ_k

    def border_radius_mm(self, theta: jax.Array) -> jax.Array:
        """r(θ) for any array of angles."""
        harmonics = jnp.cos(HARMONICS * theta[..., None] + self.phase) @ self.amplitude
        return self.radius_mm * (1.0 + harmonics)

    def polar(self, points_mm: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(distance from centre, angle) of points [..., 2]."""
        d = points_mm - self.center_mm
        return jnp.sqrt(jnp.sum(d * d, axis=-1) + 1e-12), jnp.arctan2(d[..., 1], d[..., 0])

    def signed_depth_mm(self, points_mm: jax.Array) -> jax.Array:
        """Positive inside the FAZ: how far inside the border a point lies (radially)."""
        rho, theta = self.polar(points_mm)
        return self.border_radius_mm(theta) - rho


def sample_faz(key: jax.Array, *, center_mm: jax.Array, area_mm2, area_sd_mm2, irregularity, offset_sd_mm) -> Faz:
    k_area, k_amp, k_phase, k_off = jax.random.split(key, 4)
    # Truncated so a sample never degenerates; area distribution is reparametrised (differentiable).
    area = area_mm2 + area_sd_mm2 * jnp.clip(jax.random.normal(k_area), -2.0, 2.0)
    area = jnp.maximum(area, 0.02)
    amplitude = irregularity * jax.random.normal(k_amp, (4,)) / HARMONICS * 2.0
    amplitude = jnp.clip(amplitude, -0.3, 0.3)
    # E[area] of r0(1+Σ a_k cos) is π r0² (1 + Σ a_k²/2): solve for r0.
    radius = jnp.sqrt(area / (jnp.pi * (1.0 + 0.5 * jnp.sum(amplitude**2))))
    phase = jax.random.uniform(k_phase, (4,), maxval=2 * jnp.pi)
    offset = offset_sd_mm * jnp.clip(jax.random.normal(k_off, (2,)), -2.0, 2.0)
    return Faz(center_mm=center_mm + offset, radius_mm=radius, amplitude=amplitude, phase=phase)
