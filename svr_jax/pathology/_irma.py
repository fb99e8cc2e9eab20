"""Intraretinal microvascular abnormalities (IRMA): dilated, tortuous shunt vessels in non-perfusion.

An IRMA is a chain of S segments that leaves an existing arteriole or venule beside a non-perfusion
region (the perfused vessel nearest a point on the region's border) and runs into the region, following
a sinusoid around its axis; its radius (~8 µm) is about twice a capillary's. IRMA are remodelled
capillaries and shunts fed by the surviving vessels at the edge of the ischaemic retina, so they start
on one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..graph import CAPILLARY, VesselGraph
from ._anchor import closest_points_mm
from ._lesions import Tufts, tufts_from_polylines
from ._regions import Regions, border_point_mm

MAX_IRMA = 4
SEGMENTS_PER_IRMA = 12
MAX_LENGTH_MM = 0.45
MAX_RADIUS_UM = 16.0
MIN_RADIUS_UM = 4.0
AMPLITUDE = 0.12  # lateral amplitude, fraction of the length
MAX_WAVES = 3.0


def flowing(vessels: VesselGraph) -> jax.Array:
    """[N] bool: tree segments that still carry flow (the ones a new vessel can grow from)."""
    return vessels.valid & (vessels.kind < CAPILLARY) & (vessels.perfusion > 0.5)


def max_segment_mm() -> float:
    """|dp/dt| <= L (1 + 2π waves A), dt = 1 / S."""
    return MAX_LENGTH_MM * (1 + 2 * math.pi * MAX_WAVES * AMPLITUDE) / SEGMENTS_PER_IRMA


def max_extent_mm() -> float:
    """Bound on a shunt's per-axis extent: L along its axis plus A L to either side."""
    return MAX_LENGTH_MM * (1 + 2 * AMPLITUDE)


def irma(start_mm, direction, length_mm, radius_um, waves, present) -> Tufts:
    """Deterministic twin: shunts [M] from ``start_mm`` along unit ``direction`` [M, 2]."""
    length_mm = jnp.clip(length_mm, 0.02, MAX_LENGTH_MM)
    radius_um = jnp.clip(radius_um, MIN_RADIUS_UM, MAX_RADIUS_UM)
    waves = jnp.clip(waves, 0.5, MAX_WAVES)
    t = jnp.linspace(0.0, 1.0, SEGMENTS_PER_IRMA + 1)[None]  # [1, S+1]
    normal = jnp.stack([-direction[:, 1], direction[:, 0]], -1)
    lateral = AMPLITUDE * jnp.sin(2 * jnp.pi * waves[:, None] * t)
    offset = length_mm[:, None, None] * (t[..., None] * direction[:, None] + lateral[..., None] * normal[:, None])
    points = start_mm[:, None] + offset
    severity = jnp.clip((radius_um - MIN_RADIUS_UM) / (MAX_RADIUS_UM - MIN_RADIUS_UM), 0.0, 1.0)
    return tufts_from_polylines(points, radius_um, present, severity)


def random_irma(key: jax.Array, regions: Regions, *, present, length_mm, radius_um, fov_mm: float,
                vessels: VesselGraph | None = None) -> Tufts:
    """``present`` [M] bool fixes the count; each starts on the perfused tree vessel of ``vessels`` (a
    slice of tree segments) nearest a point on a region's border (without ``vessels``: on the border)
    and heads into the region."""
    m = present.shape[0]
    k_reg, k_ang, k_turn, k_len, k_rad, k_wav = jax.random.split(key, 6)
    logits = jnp.where(regions.present, 0.0, -jnp.inf)
    region = jax.random.categorical(k_reg, jnp.where(jnp.any(regions.present), logits, 0.0), shape=(m,))
    picked = jax.tree.map(lambda a: a[region], regions)
    angle = jax.random.uniform(k_ang, (m,), maxval=2 * jnp.pi)
    start = jnp.clip(border_point_mm(picked, angle, 1.05), 0.0, fov_mm)
    turn = jax.random.uniform(k_turn, (m,), minval=-0.6, maxval=0.6)
    if vessels is None:
        inward = angle + jnp.pi + turn
    else:
        start = closest_points_mm(start, vessels, flowing(vessels))[0]
        to_center = picked.center_mm - start
        inward = jnp.arctan2(to_center[:, 1], to_center[:, 0]) + turn
    direction = jnp.stack([jnp.cos(inward), jnp.sin(inward)], -1)
    length = length_mm * jax.random.uniform(k_len, (m,), minval=0.7, maxval=1.3)
    radius = radius_um * jax.random.uniform(k_rad, (m,), minval=0.8, maxval=1.2)
    waves = jax.random.uniform(k_wav, (m,), minval=1.0, maxval=2.5)
    return irma(start, direction, length, radius, waves, present & jnp.any(regions.present))
