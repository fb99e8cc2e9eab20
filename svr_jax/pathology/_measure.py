"""Measures of the diseased anatomy that the text and the tests reuse: tortuosity index, FAZ shape.

Tortuosity index = arc length / chord (1 for a straight vessel), measured on the graph over paths of a
fixed length, ``PATH_LENGTH_MM``, on both tree architectures: the path ending at each large tree segment
(radius >= ``LARGE_VESSEL_RADIUS_UM``) follows its ancestors through ``parent`` until it is that long,
without passing a junction (the angle at a branch point is not tortuosity). A fixed number of segments
would make the index a function of the growth step (with a 0.03 mm step a 6-segment path spans
0.18 mm, too short to see a bend); 0.25 mm holds about one half-wave of the DR bends (the colonisation
warp's wavelength is 0.3-0.5 mm, the fixed layout bends each branch by 2-3 half-waves) and is shorter
than most junction-free runs of the large vessels, at either field (a vessel has the same calibre and
bends in mm at 3 and 6 mm). ``branch_tortuosity`` of the fixed tree layout (``growth.grow_trees``) is
the per-branch arc/chord that its tortuosity operator acts on: branch b of a generation with n branches
is the run of ``steps_per_branch`` segments offset + s * n + b, s = 0..S-1.

Both run on the device (``jnp``, float32, inside the batched simulator) or on the host (``xp=np`` on
fetched float64 arrays): the export writes the host value, since a float32 reduction on the device
may differ in its last bit when the batch is split over another number of devices (XLA picks the
reduction order per shape), and the export promises the same bytes on any device count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..config import SimConfig
from ..faz import Faz
from ..graph import VesselGraph, combine_ancestors


LARGE_VESSEL_RADIUS_UM = 7.5  # tortuosity is graded on the large vessels (>= 15 µm wide, as OCTA-500's labels)
PATH_LENGTH_MM = 0.25  # arc length of the tortuosity paths (see the module docstring)
MAX_PATH_STEPS = 24  # static bound: growth steps shorter than PATH_LENGTH_MM / 24 give no whole path


def tree_capacity(cfg: SimConfig) -> int:
    """Segments of the trees (the first slots of the graph), either architecture."""
    from ..growth import tree_groups

    return tree_groups(cfg)[-1].stop


def path_ends(graph: VesselGraph, cfg: SimConfig, xp=jnp):
    """([B] the farthest ancestor of the ``PATH_LENGTH_MM`` path ending at each tree segment, [B] its
    arc length in mm, [B] bool: the path is that long, runs along one large vessel through no junction)."""
    n = tree_capacity(cfg)
    parent, valid = graph.parent[..., :n], graph.valid[:n]
    length = xp.linalg.norm(graph.end_mm[:n] - graph.start_mm[:n], axis=-1)
    target = xp.where(valid & (parent >= 0), parent, n)
    if xp is np:
        children = np.bincount(target, minlength=n + 1)[:n]
    else:
        children = jax.ops.segment_sum(jnp.ones(n, jnp.int32), target, num_segments=n + 1)[:n]
    large = valid & (graph.radius_um[:n] >= LARGE_VESSEL_RADIUS_UM)
    far, arc, ok = xp.arange(n), length, large
    for _ in range(MAX_PATH_STEPS - 1):
        need = arc < PATH_LENGTH_MM
        up = parent[far]
        safe = xp.maximum(up, 0)
        can = (up >= 0) & (children[safe] == 1) & large[safe]
        ok = ok & (~need | can)
        step = need & can
        far = xp.where(step, safe, far)
        arc = arc + xp.where(step, length[safe], 0.0)
    return far, arc, ok & (arc >= PATH_LENGTH_MM)


def path_tortuosity(graph: VesselGraph, cfg: SimConfig, xp=jnp) -> tuple[jax.Array, jax.Array]:
    """(index [B], whole [B] bool): arc/chord of the fixed-length path ending at each tree segment."""
    n = tree_capacity(cfg)
    far, arc, whole = path_ends(graph, cfg, xp)
    chord = xp.linalg.norm(graph.end_mm[:n] - graph.start_mm[far], axis=-1)
    whole = whole & (chord > 1e-4)
    return arc / xp.maximum(chord, 1e-4), whole


def tree_depth(graph: VesselGraph, cfg: SimConfig) -> jax.Array:
    """[N_tree] steps from each colonisation tree segment up to its root (pointer jumping)."""
    from ..colonisation import capacity

    parent = graph.parent[:capacity(cfg)]
    rounds = int(np.ceil(np.log2(cfg.growth.colonisation_steps + 2)))
    return combine_ancestors((parent >= 0).astype(jnp.int32), parent, rounds, jnp.add)


def branch_index(cfg: SimConfig) -> np.ndarray:
    """[B, S] static segment indices of every tree branch (all generations) of the fixed tree layout."""
    g = cfg.growth
    if g.architecture == "colonisation":
        raise ValueError("colonisation trees have no static branches: use path_tortuosity(graph, cfg)")
    rows, offset = [], 0
    for gen in range(g.generations):
        n = g.n_roots * 2**gen
        rows.append(offset + np.arange(g.steps_per_branch)[None, :] * n + np.arange(n)[:, None])
        offset += g.steps_per_branch * n
    return np.concatenate(rows, 0)


def branch_tortuosity(graph: VesselGraph, cfg: SimConfig, xp=jnp) -> tuple[jax.Array, jax.Array]:
    """(index [B], whole [B] bool): arc/chord of each branch of the fixed layout and whether all its
    segments exist; the colonisation trees have no static branches: their fixed-length paths."""
    if cfg.growth.architecture == "colonisation":
        return path_tortuosity(graph, cfg, xp)
    idx = branch_index(cfg)
    start, end = graph.start_mm[idx], graph.end_mm[idx]  # [B, S, 2]
    arc = xp.sum(xp.linalg.norm(end - start, axis=-1), -1)
    chord = xp.linalg.norm(end[:, -1] - start[:, 0], axis=-1)
    whole = xp.all(graph.valid[idx], -1) & (chord > 1e-4)
    return arc / xp.maximum(chord, 1e-4), whole


def tortuosity_index(graph: VesselGraph, cfg: SimConfig, xp=jnp) -> jax.Array:
    """[] mean arc/chord over the fixed-length paths of the large vessels (either architecture)."""
    index, whole = path_tortuosity(graph, cfg, xp)
    return xp.sum(xp.where(whole, index, 0.0)) / xp.maximum(xp.sum(whole), 1)


def faz_shape(faz: Faz, fringe=None, n_vertices: int = 256) -> dict:
    """Area (mm²), perimeter (mm) and circularity 4πA/P² of the FAZ border polygon (with its pruned
    ``fringe``, a ``_faz.Fringe``, where given)."""
    from ._faz import fringe_width_mm

    theta = jnp.linspace(0.0, 2 * jnp.pi, n_vertices, endpoint=False)
    r = faz.border_radius_mm(theta)
    if fringe is not None:
        r = r + fringe_width_mm(fringe, jnp.cos(theta), jnp.sin(theta))
    xy = r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    nxt = jnp.roll(xy, -1, axis=0)
    area = 0.5 * jnp.abs(jnp.sum(xy[:, 0] * nxt[:, 1] - nxt[:, 0] * xy[:, 1]))
    perimeter = jnp.sum(jnp.linalg.norm(nxt - xy, axis=-1))
    return dict(faz_border_area_mm2=area, faz_perimeter_mm=perimeter, faz_circularity=4 * jnp.pi * area / perimeter**2)
