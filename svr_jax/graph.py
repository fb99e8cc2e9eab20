"""The vessel graph: fixed-capacity arrays of straight segments, so that everything jits and vmaps.

A segment is the unit the renderer splats: a straight piece of vessel from ``start_mm`` to
``end_mm`` with one radius. Polylines (a branch, a curved capillary) are runs of segments whose
``parent`` is the previous segment. Capacity is fixed by the static config; segments that do not exist
in a sample (a branch that ran into the FAZ, a capillary edge that is absent) keep their slot with
``valid == False`` and render as nothing.

Coordinates are millimetres in image orientation: x to the right, y down, origin at the top-left
corner of the field.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

# Vessel kinds. Capillaries of the superficial plexus and of the deeper plexus are apart because the
# deeper plexus is only projected (blurred, weaker) into the ILM-OPL slab.
ARTERY = 0
VEIN = 1
CAPILLARY = 2
DEEP_CAPILLARY = 3
KIND_NAMES = ("artery", "vein", "capillary", "deep_capillary")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VesselGraph:
    start_mm: jax.Array  # [N, 2]
    end_mm: jax.Array  # [N, 2]
    radius_um: jax.Array  # [N]
    kind: jax.Array  # [N] int32, one of ARTERY, VEIN, CAPILLARY, DEEP_CAPILLARY
    parent: jax.Array  # [N] int32, index of the upstream segment, -1 for a root or a capillary edge
    perfusion: jax.Array  # [N] float in [0, 1]: flow weight; dropout lowers it (soft, differentiable)
    valid: jax.Array  # [N] bool: the slot holds a segment of this sample

    @property
    def capacity(self) -> int:
        return self.radius_um.shape[-1]

    def length_mm(self) -> jax.Array:
        return jnp.linalg.norm(self.end_mm - self.start_mm, axis=-1)

    def slice(self, start: int, stop: int) -> "VesselGraph":
        return jax.tree.map(lambda a: a[..., start:stop] if a.ndim == self.radius_um.ndim else a[..., start:stop, :], self)


def concatenate(graphs: list[VesselGraph]) -> VesselGraph:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *graphs)


class SegmentGroup(NamedTuple):
    """A static slice of the graph whose segments share a splat window size (grouped by radius)."""

    name: str
    start: int
    stop: int
    max_span_px: float  # longest axis-aligned extent of one segment, in pixels
    max_radius_px: float


def combine_ancestors(values: jax.Array, parent: jax.Array, rounds: int, combine) -> jax.Array:
    """[N] each entry combined with those of its ancestors along ``parent`` (-1: a root) by pointer
    jumping: after ``rounds`` rounds, with the 2^rounds - 1 nearest ancestors (log2 of the depth
    gathers instead of a walk as deep as the tree). ``combine`` must be associative (+, |)."""
    anc = parent
    for _ in range(rounds):
        has = anc >= 0
        safe = jnp.maximum(anc, 0)
        values = jnp.where(has, combine(values, values[safe]), values)
        anc = jnp.where(has, anc[safe], -1)
    return values
