"""Microaneurysms: saccular or fusiform dilations of capillaries, diameter ~25-130 µm.

Each is an ellipse on a capillary: fusiform ones are centred on it and elongated along it, saccular
ones are round and bulge to one side. Their number is an explicit draw (``present`` slots of a fixed
capacity), mostly placed at the borders of non-perfusion regions (where they form clinically), else in
the parafoveal ring; each is snapped to the nearest surviving capillary.

So that the findings count equals the number of connected components of the mask, a microaneurysm
is dropped if it would come within 2 pixels of an earlier one, or if its centre is not inside the
field, and its minor radius is at least 0.75 pixel (a digitised ellipse that is 4-connected).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..faz import Faz
from ..graph import CAPILLARY, VesselGraph
from ._lesions import Blobs
from ._regions import Regions, border_point_mm

MAX_MICROANEURYSMS = 32
MIN_RADIUS_UM, MAX_RADIUS_UM = 12.5, 65.0
MAX_ASPECT = 2.0
MIN_RADIUS_PX = 0.75
GAP_PX = 2.0


def microaneurysms(center_mm, axis, radius_um, aspect, present, *, fov_mm: float, pixel_um: float) -> Blobs:
    """Deterministic twin: explicit ellipses [M]; enforces the separation and in-field rules."""
    radius_um = jnp.maximum(radius_um, max(MIN_RADIUS_UM, MIN_RADIUS_PX * pixel_um))
    aspect = jnp.clip(aspect, 1.0, MAX_ASPECT)
    major_mm = radius_um * aspect / 1000.0
    gap_mm = GAP_PX * pixel_um / 1000.0
    margin = (radius_um / 1000.0 + gap_mm)[:, None]
    inside = jnp.all((center_mm >= margin) & (center_mm <= fov_mm - margin), -1)
    candidate = present & inside
    distance = jnp.linalg.norm(center_mm[:, None] - center_mm[None], axis=-1)
    m = radius_um.shape[0]
    earlier = jnp.arange(m)[None, :] < jnp.arange(m)[:, None]  # [i, j]: j before i
    clash = (distance < major_mm[:, None] + major_mm[None, :] + gap_mm) & earlier & candidate[None, :]
    return Blobs(center_mm=center_mm, axis=axis, radius_um=radius_um, aspect=aspect, present=candidate & ~jnp.any(clash, -1))


def random_microaneurysms(
    key: jax.Array,
    graph: VesselGraph,
    faz: Faz,
    regions: Regions,
    *,
    present: jax.Array,
    radius_um,
    radius_sd,
    border_fraction,
    fov_mm: float,
    pixel_um: float,
    candidates: tuple[int, int] | None = None,
) -> Blobs:
    """``present`` [M] bool fixes the count; sites at region borders or in the parafoveal ring.

    ``candidates``: a static (start, stop) slice of the graph to search for the capillary to snap to
    (default: all of it; the search is the operator's main cost)."""
    m = present.shape[0]
    k_reg, k_ang, k_out, k_ring, k_border, k_size, k_shape, k_side, k_aspect = jax.random.split(key, 9)
    # Target sites: just outside the border of a random present region ...
    logits = jnp.where(regions.present, 0.0, -jnp.inf)
    region = jax.random.categorical(k_reg, jnp.where(jnp.any(regions.present), logits, 0.0), shape=(m,))
    angle = jax.random.uniform(k_ang, (m,), maxval=2 * jnp.pi)
    picked = jax.tree.map(lambda a: a[region], regions)
    at_border = border_point_mm(picked, angle, jax.random.uniform(k_out, (m,), minval=1.0, maxval=1.25))
    # ... or in the parafoveal ring, 0.05-0.8 mm (at 3 mm) outside the FAZ border.
    ring = faz.border_radius_mm(angle) + (fov_mm / 3.0) * jax.random.uniform(k_ring, (m,), minval=0.05, maxval=0.8)
    in_ring = faz.center_mm + ring[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    use_border = jnp.any(regions.present) & (jax.random.uniform(k_border, (m,)) < border_fraction)
    target = jnp.where(use_border[:, None], at_border, in_ring)

    # Snap to the nearest surviving superficial capillary: its midpoint and direction.
    if candidates is not None:
        graph = graph.slice(*candidates)
    midpoint = 0.5 * (graph.start_mm + graph.end_mm)
    usable = graph.valid & (graph.kind == CAPILLARY)
    nearest = _nearest(target, midpoint, usable)
    chord = graph.end_mm[nearest] - graph.start_mm[nearest]
    along = chord / (jnp.linalg.norm(chord, axis=-1, keepdims=True) + 1e-9)
    normal = jnp.stack([-along[:, 1], along[:, 0]], -1)

    radius = radius_um * jnp.exp(radius_sd * jnp.clip(jax.random.normal(k_size, (m,)), -2.5, 2.5))
    radius = jnp.clip(radius, MIN_RADIUS_UM, MAX_RADIUS_UM)
    saccular = jax.random.bernoulli(k_shape, 0.5, (m,))
    side = jnp.where(jax.random.bernoulli(k_side, 0.5, (m,)), 1.0, -1.0)
    aspect = jnp.where(saccular, 1.0, jax.random.uniform(k_aspect, (m,), minval=1.4, maxval=MAX_ASPECT))
    # A saccular one bulges to the side of its capillary; a fusiform one is centred on it.
    center = midpoint[nearest] + jnp.where(saccular, 0.7 * side * radius / 1000.0, 0.0)[:, None] * normal
    return microaneurysms(center, along, radius, aspect, present & jnp.any(usable), fov_mm=fov_mm, pixel_um=pixel_um)


def _nearest(target, points, usable, chunk: int = 512):
    """[M] index of the usable point [N] nearest each target [M] (a blockwise min, then argmin in one
    block: XLA's CPU argmin over all N is ~15x slower than a min)."""
    n = points.shape[0]
    pad = -n % chunk
    px, py = (jnp.pad(points[:, i], (0, pad)) for i in (0, 1))
    penalty = jnp.where(jnp.pad(usable, (0, pad)), 0.0, 1e6)
    dist2 = (target[:, 0, None] - px) ** 2 + (target[:, 1, None] - py) ** 2 + penalty  # [M, N']
    blocks = dist2.reshape(target.shape[0], -1, chunk)
    best = jnp.argmin(jnp.min(blocks, -1), -1)  # [M]
    inner = jnp.argmin(jnp.take_along_axis(blocks, best[:, None, None], 1)[:, 0], -1)
    return best * chunk + inner


def severity(blobs: Blobs) -> jax.Array:
    """[M] in [0, 1]: size within the clinical range."""
    return jnp.clip((blobs.radius_um - MIN_RADIUS_UM) / (MAX_RADIUS_UM - MIN_RADIUS_UM), 0.0, 1.0)
