"""Where lesions meet the existing vessels: the closest point on a set of segments.

Non-perfusion areas are placed away from the arterioles, IRMA and neovascular tufts grow out of the
vessels beside those areas; both ask for the nearest segment axis of a fixed-capacity graph slice
(one [P, N] projection: P lesions against the N tree segments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..graph import VesselGraph


def closest_points_mm(points_mm: jax.Array, graph: VesselGraph, usable: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(closest [P, 2], distance [P]): the nearest point on any ``usable`` [N] segment's axis to each of
    the points [P, 2], and its distance (inf, and the point itself, where no segment is usable)."""
    a, d = graph.start_mm, graph.end_mm - graph.start_mm
    rel = points_mm[:, None] - a[None]  # [P, N, 2]
    t = jnp.clip(jnp.sum(rel * d[None], -1) / jnp.maximum(jnp.sum(d * d, -1), 1e-12)[None], 0.0, 1.0)
    gap = rel - t[..., None] * d[None]
    dist2 = jnp.where(usable[None], jnp.sum(gap * gap, -1), jnp.inf)
    best = jnp.argmin(dist2, -1)
    closest = a[best] + jnp.take_along_axis(t, best[:, None], 1) * d[best]
    found = jnp.isfinite(jnp.min(dist2, -1))
    distance = jnp.sqrt(jnp.min(dist2, -1))
    return jnp.where(found[:, None], closest, points_mm), distance
