"""Fixed-capacity containers of the lesions that are not changes of existing vessels.

Microaneurysms are ellipses (``Blobs``: a capillary dilation is a sac, not a tube); neovascular tufts
and IRMA are runs of new vessel segments (``Tufts``), rendered by the same windowed splat as the graph.
A ``Tufts`` of capacity M with S segments per lesion stores lesion i in segments [i*S, (i+1)*S).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..graph import CAPILLARY, VesselGraph

# Lesion types: the findings record's ``type`` and the names used in metadata and masks.
NONPERFUSION, MICROANEURYSM, NEOVASCULARIZATION, IRMA = range(4)
LESION_NAMES = ("nonperfusion", "microaneurysm", "neovascularization", "irma")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Blobs:
    center_mm: jax.Array  # [M, 2]
    axis: jax.Array  # [M, 2] unit direction of the major axis
    radius_um: jax.Array  # [M] minor semi-axis
    aspect: jax.Array  # [M] major / minor semi-axis, >= 1 (1: saccular, > 1: fusiform)
    present: jax.Array  # [M] bool

    @property
    def capacity(self) -> int:
        return self.radius_um.shape[-1]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Tufts:
    segments: VesselGraph  # [M * S] (valid == present of its lesion)
    present: jax.Array  # [M] bool
    severity: jax.Array  # [M] in [0, 1]

    @property
    def capacity(self) -> int:
        return self.present.shape[-1]

    @property
    def segments_per_lesion(self) -> int:
        return self.segments.capacity // self.capacity


def tufts_from_polylines(points_mm: jax.Array, radius_um: jax.Array, present: jax.Array, severity: jax.Array) -> Tufts:
    """points_mm [M, S+1, 2] polylines, radius_um [M], present [M] -> Tufts of M * S segments."""
    m, s1, _ = points_mm.shape
    s = s1 - 1
    index = jnp.arange(m * s)
    return Tufts(
        segments=VesselGraph(
            start_mm=points_mm[:, :-1].reshape(-1, 2),
            end_mm=points_mm[:, 1:].reshape(-1, 2),
            radius_um=jnp.repeat(radius_um, s),
            kind=jnp.full(m * s, CAPILLARY, jnp.int32),
            parent=jnp.where(index % s == 0, -1, index - 1).astype(jnp.int32),
            perfusion=jnp.ones(m * s),
            valid=jnp.repeat(present, s),
        ),
        present=present,
        severity=severity,
    )
