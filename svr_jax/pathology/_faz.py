"""FAZ enlargement and irregularity: applied to the sampled FAZ *before* growth (vessels respect it)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ..faz import Faz

MAX_AMPLITUDE = 0.3


def enlarge_faz(faz: Faz, *, area_scale, irregularity_scale) -> Faz:
    """Scale the FAZ's (mean) area by ``area_scale`` and its border harmonics by ``irregularity_scale``."""
    amplitude = jnp.clip(faz.amplitude * irregularity_scale, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    # E[area] = π r0² (1 + Σ a²/2): keep it exactly area_scale times the healthy one.
    before = 1.0 + 0.5 * jnp.sum(faz.amplitude**2)
    after = 1.0 + 0.5 * jnp.sum(amplitude**2)
    radius = faz.radius_mm * jnp.sqrt(jnp.maximum(area_scale, 0.1) * before / after)
    return dataclasses.replace(faz, radius_mm=radius, amplitude=amplitude)
