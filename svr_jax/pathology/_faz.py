"""The DR FAZ: enlarged and more irregular, with a ragged border of pruned capillaries.

``enlarge_faz`` scales the sampled FAZ *before* growth (vessels respect it). The border of a DR FAZ is
also eroded at the scale of single capillaries: the loops of the border ring are lost, and the
capillaries that reached it end blindly. ``prune_faz_border`` removes the superficial capillary pieces
in a fringe just outside the border whose width varies along it in narrow bays (``Fringe``, a sum of
high angular harmonics through a sigmoid); ``ragged_depth_mm`` is the FAZ's signed depth with that fringe,
which the FAZ mask follows (a grader outlines the vessel-free zone). A band of 0 (normal eyes) changes
nothing.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..faz import Faz
from ..graph import CAPILLARY, VesselGraph

MAX_AMPLITUDE = 0.3


def enlarge_faz(faz: Faz, *, area_scale, irregularity_scale) -> Faz:
    """Scale the FAZ's (mean) area by ``area_scale`` and its border harmonics by ``irregularity_scale``."""
    amplitude = jnp.clip(faz.amplitude * irregularity_scale, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    # E[area] = π r0² (1 + Σ a²/2): keep it exactly area_scale times the healthy one.
    before = 1.0 + 0.5 * jnp.sum(faz.amplitude**2)
    after = 1.0 + 0.5 * jnp.sum(amplitude**2)
    radius = faz.radius_mm * jnp.sqrt(jnp.maximum(area_scale, 0.1) * before / after)
    return dataclasses.replace(faz, radius_mm=radius, amplitude=amplitude)


# --- ragged border: capillaries pruned in a fringe outside the FAZ (DR) --------------------------

FRINGE_HARMONICS = 16  # k = 6..21: bays a few capillaries wide along the border
FRINGE_FIRST = 6
FRINGE_GAIN = 2.5  # sharpness of the bays: w(θ) is near 0 or 1 over most of the border


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Fringe:
    """The pruned fringe of a DR FAZ: {ρ < r(θ) + band_mm · w(θ)}, w(θ) = sigmoid(Σ_k α_k cos kθ + β_k sin kθ)."""

    band_mm: jax.Array  # [] its greatest width (0: none, the healthy FAZ)
    cos_coef: jax.Array  # [FRINGE_HARMONICS]
    sin_coef: jax.Array  # [FRINGE_HARMONICS]


def no_fringe() -> Fringe:
    zeros = jnp.zeros(FRINGE_HARMONICS)
    return Fringe(band_mm=jnp.zeros(()), cos_coef=zeros, sin_coef=zeros)


def random_fringe(key: jax.Array, *, band_mm) -> Fringe:
    k_cos, k_sin = jax.random.split(key)
    scale = FRINGE_GAIN / jnp.sqrt(FRINGE_HARMONICS / 2.0)  # Σ has sd FRINGE_GAIN
    return Fringe(band_mm=jnp.maximum(jnp.asarray(band_mm, jnp.float32), 0.0),
                  cos_coef=scale * jax.random.normal(k_cos, (FRINGE_HARMONICS,)),
                  sin_coef=scale * jax.random.normal(k_sin, (FRINGE_HARMONICS,)))


def fringe_width_mm(fringe: Fringe, c1: jax.Array, s1: jax.Array) -> jax.Array:
    """band · w(θ) [...] from cos θ, sin θ [...] (harmonics by the angle-addition recurrence: this runs at
    every pixel and every capillary)."""
    c, s = c1, s1
    for _ in range(FRINGE_FIRST - 1):
        c, s = c * c1 - s * s1, s * c1 + c * s1
    total = 0.0
    for k in range(FRINGE_HARMONICS):
        total = total + fringe.cos_coef[k] * c + fringe.sin_coef[k] * s
        c, s = c * c1 - s * s1, s * c1 + c * s1
    return fringe.band_mm * jax.nn.sigmoid(total)


def ragged_depth_mm(faz: Faz, fringe: Fringe, points_mm: jax.Array) -> jax.Array:
    """[...]: signed depth of points [..., 2] inside the FAZ with its pruned fringe (>= the FAZ's own)."""
    d = points_mm - faz.center_mm
    rho = jnp.sqrt(jnp.sum(d * d, -1) + 1e-12)
    return faz.signed_depth_mm(points_mm) + fringe_width_mm(fringe, d[..., 0] / rho, d[..., 1] / rho)


def prune_faz_border(graph: VesselGraph, faz: Faz, fringe: Fringe) -> VesselGraph:
    """Superficial capillary pieces whose midpoint lies in the fringe (outside the FAZ border, inside the
    ragged one) are lost: the capillaries at the border end in pruned stubs, not in the border ring."""
    midpoint = 0.5 * (graph.start_mm + graph.end_mm)
    in_fringe = (ragged_depth_mm(faz, fringe, midpoint) > 0) & (faz.signed_depth_mm(midpoint) <= 0)
    lost = in_fringe & (graph.kind == CAPILLARY)
    return dataclasses.replace(graph, valid=graph.valid & ~lost, perfusion=jnp.where(lost, 0.0, graph.perfusion))
