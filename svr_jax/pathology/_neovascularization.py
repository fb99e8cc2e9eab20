"""Neovascularization (PDR only): tufts of fine, looping, tortuous vessels.

A tuft is a rose curve r(t) = R cos(k t) (k = 3 or 5 petals: closed loops through its centre) with a
radial wiggle, drawn as S segments. Tufts sprout from the venules (NVE arise mostly from veins) at the
borders of non-perfusion regions: the centre, through which every loop passes, is the point of the
perfused venule (else any perfused tree vessel) nearest a point on a region's border, so the loops
grow out of that vessel; in a wide (6 mm) field some sit towards the optic disc (NVD-like).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..graph import VEIN, VesselGraph
from ._anchor import closest_points_mm
from ._irma import flowing
from ._lesions import Tufts, tufts_from_polylines
from ._regions import Regions, border_point_mm

MAX_TUFTS = 4
SEGMENTS_PER_TUFT = 24
MAX_SIZE_MM = 0.15  # largest tuft radius R
MAX_RADIUS_UM = 8.0
WIGGLE = 0.15  # relative radial wiggle
MAX_PETALS = 5


def max_segment_mm() -> float:
    """Bound on one segment's length: |dp/dt| <= R (1 + wiggle) sqrt(1 + k²), dt = π / S."""
    return MAX_SIZE_MM * (1 + WIGGLE) * math.sqrt(1 + (MAX_PETALS + 3) ** 2) * math.pi / SEGMENTS_PER_TUFT


def max_extent_mm() -> float:
    """Bound on a tuft's per-axis extent: its points lie within R (1 + wiggle) of the centre."""
    return 2 * MAX_SIZE_MM * (1 + WIGGLE)


def neovascularization(center_mm, size_mm, petals, rotation, radius_um, present) -> Tufts:
    """Deterministic twin: tufts [M] at ``center_mm`` of radius ``size_mm`` with ``petals`` (odd) loops."""
    size_mm = jnp.clip(size_mm, 0.01, MAX_SIZE_MM)
    radius_um = jnp.clip(radius_um, 1.0, MAX_RADIUS_UM)
    t = jnp.linspace(0.0, jnp.pi, SEGMENTS_PER_TUFT + 1)  # odd k: the rose closes over [0, π]
    wiggle = 1.0 + WIGGLE * jnp.sin(3.0 * t[None] * petals[:, None] + rotation[:, None])
    r = size_mm[:, None] * jnp.cos(petals[:, None] * t[None]) * wiggle  # [M, S+1]
    angle = t[None] + rotation[:, None]
    points = center_mm[:, None] + r[..., None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return tufts_from_polylines(points, radius_um, present, severity=size_mm / MAX_SIZE_MM)


def random_neovascularization(
    key: jax.Array, regions: Regions, *, present, size_mm, radius_um, fov_mm: float, faz_center_mm, nasal_sign,
    vessels: VesselGraph | None = None,
) -> Tufts:
    """``present`` [M] bool fixes the count; tufts on the venules of ``vessels`` (a slice of tree segments)
    beside region borders (without ``vessels``: on the borders), or disc-side in wide fields."""
    m = present.shape[0]
    k_reg, k_ang, k_size, k_pet, k_rot, k_disc, k_disc_y = jax.random.split(key, 7)
    logits = jnp.where(regions.present, 0.0, -jnp.inf)
    region = jax.random.categorical(k_reg, jnp.where(jnp.any(regions.present), logits, 0.0), shape=(m,))
    picked = jax.tree.map(lambda a: a[region], regions)
    center = border_point_mm(picked, jax.random.uniform(k_ang, (m,), maxval=2 * jnp.pi), 1.0)
    if vessels is not None:
        usable = flowing(vessels)
        venule = usable & (vessels.kind == VEIN)
        center = closest_points_mm(center, vessels, jnp.where(jnp.any(venule), venule, usable))[0]
    if fov_mm >= 4.5:  # static: a wide field reaches the disc margin
        disc = jnp.stack(
            [
                jnp.full((m,), 0.5 * fov_mm + nasal_sign * 0.44 * fov_mm),
                faz_center_mm[1] + fov_mm * jax.random.uniform(k_disc_y, (m,), minval=-0.2, maxval=0.2),
            ],
            -1,
        )
        center = jnp.where(jax.random.bernoulli(k_disc, 0.35, (m,))[:, None], disc, center)
    center = jnp.clip(center, 0.0, fov_mm)
    size = size_mm * jax.random.uniform(k_size, (m,), minval=0.7, maxval=1.3)
    petals = jnp.where(jax.random.bernoulli(k_pet, 0.5, (m,)), 3.0, 5.0)
    rotation = jax.random.uniform(k_rot, (m,), maxval=2 * jnp.pi)
    return neovascularization(center, size, petals, rotation, jnp.full((m,), 1.0) * radius_um, present & jnp.any(regions.present))
