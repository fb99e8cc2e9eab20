"""Venous beading: venules alternately dilated and narrowed, segment by segment (severe NPDR, PDR).

Dilated radii are clipped to the tree render windows' static radius bound (rarely reached: root radii
are drawn well below it).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ..config import SimConfig
from ..graph import VEIN, VesselGraph
from ..growth import tree_groups
from ._measure import branch_index, tree_depth

MAX_BEADING = 0.5
RADIUS_SLACK = 1.0  # the tree windows' radius bound is kept: dilated radii are clipped to it


def radius_bound_um(cfg: SimConfig, capacity: int) -> np.ndarray:
    """[N] the render group's radius bound of each tree segment (inf for the meshes)."""
    bound = np.full(capacity, np.inf, np.float32)
    for grp in tree_groups(cfg):
        bound[grp.start : grp.stop] = grp.max_radius_px * RADIUS_SLACK * cfg.field.pixel_um
    return bound


def venous_beading(graph: VesselGraph, cfg: SimConfig, *, amplitude) -> VesselGraph:
    """Radius of venule step s scaled by 1 + a (even s) or 1 - a/2 (odd s); a = ``amplitude``. Steps are
    counted along each branch (fixed layout) or from the root (colonisation trees)."""
    amplitude = jnp.clip(amplitude, 0.0, MAX_BEADING)
    if cfg.growth.architecture == "colonisation":  # alternating along each vessel: by depth from the root
        depth = tree_depth(graph, cfg)
        scale = jnp.ones(graph.capacity).at[: depth.shape[0]].set(1.0 + amplitude * jnp.where(depth % 2 == 0, 1.0, -0.5))
    else:
        idx = branch_index(cfg)
        pattern = jnp.where(jnp.arange(idx.shape[1]) % 2 == 0, 1.0, -0.5)  # [S]
        scale = jnp.ones(graph.capacity).at[idx].set(jnp.broadcast_to(1.0 + amplitude * pattern, idx.shape))
    scale = jnp.where(graph.kind == VEIN, scale, 1.0)
    radius = jnp.minimum(graph.radius_um * scale, jnp.maximum(graph.radius_um, radius_bound_um(cfg, graph.capacity)))
    return dataclasses.replace(graph, radius_um=radius)
