"""Measures of the diseased anatomy that the text and the tests reuse: tortuosity index, FAZ shape.

Tortuosity index of a branch = arc length / chord (1 for a straight vessel), measured on the graph:
the sum of the branch's segment lengths over the distance between its first start and last end. A
branch of the fixed tree layout (``growth.grow_trees``) is the run of ``steps_per_branch`` segments
offset + s * n + b, s = 0..S-1, for branch b of a generation with n branches. The space-colonisation
trees (``colonisation``) have no static branches: there a "branch" is the path of ``PATH_STEPS``
segments that ends at each tree segment (its ancestors, followed through ``parent``) without passing a
junction (the angle at a branch point is not tortuosity).

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
from ..graph import VesselGraph


LARGE_VESSEL_RADIUS_UM = 7.5
PATH_STEPS = 6  # segments of a colonisation "branch" (0.3 mm at 3 mm, 0.5 mm at 6 mm)


def path_index(graph: VesselGraph, cfg: SimConfig, xp=jnp):
    """([B, PATH_STEPS] segment indices, from the farthest ancestor to the segment, of the path ending at
    each tree segment; [B] bool: the whole path exists and runs along one vessel, through no junction).
    Colonisation trees only."""
    from ..colonisation import capacity

    n = capacity(cfg)
    parent = graph.parent[..., :n]
    target = xp.where(graph.valid[:n] & (parent >= 0), parent, n)
    if xp is np:
        children = np.bincount(target, minlength=n + 1)[:n]
    else:
        children = jax.ops.segment_sum(jnp.ones(n, jnp.int32), target, num_segments=n + 1)[:n]
    cols = [xp.arange(n)]
    ok = xp.ones(n, bool)
    for _ in range(PATH_STEPS - 1):
        up = parent[xp.maximum(cols[-1], 0)]
        ok = ok & (up >= 0) & (children[xp.maximum(up, 0)] == 1)
        cols.append(xp.maximum(up, 0))
    # Tortuosity is graded on the large vessels (>= 15 µm wide, as OCTA-500's large-vessel labels).
    ok = ok & (graph.radius_um[:n] >= LARGE_VESSEL_RADIUS_UM)
    return xp.stack(cols[::-1], -1), ok


def tree_depth(graph: VesselGraph, cfg: SimConfig) -> jax.Array:
    """[N_tree] steps from each colonisation tree segment up to its root (pointer jumping)."""
    from ..colonisation import capacity

    n = capacity(cfg)
    anc = graph.parent[:n]
    depth = (anc >= 0).astype(jnp.int32)
    for _ in range(int(np.ceil(np.log2(cfg.growth.colonisation_steps + 2)))):
        has = anc >= 0
        safe = jnp.maximum(anc, 0)
        depth = depth + jnp.where(has, depth[safe], 0)
        anc = jnp.where(has, anc[safe], -1)
    return depth


def branch_index(cfg: SimConfig) -> np.ndarray:
    """[B, S] static segment indices of every tree branch (all generations) of the fixed tree layout."""
    g = cfg.growth
    if g.architecture == "colonisation":
        raise ValueError("colonisation trees have no static branches: use path_index(graph, cfg)")
    rows, offset = [], 0
    for gen in range(g.generations):
        n = g.n_roots * 2**gen
        rows.append(offset + np.arange(g.steps_per_branch)[None, :] * n + np.arange(n)[:, None])
        offset += g.steps_per_branch * n
    return np.concatenate(rows, 0)


def branch_tortuosity(graph: VesselGraph, cfg: SimConfig, xp=jnp) -> tuple[jax.Array, jax.Array]:
    """(index [B], whole [B] bool): arc/chord of each branch, and whether all its segments exist."""
    if cfg.growth.architecture == "colonisation":
        idx, exists = path_index(graph, cfg, xp)
    else:
        idx, exists = branch_index(cfg), True
    start, end = graph.start_mm[idx], graph.end_mm[idx]  # [B, S, 2]
    arc = xp.sum(xp.linalg.norm(end - start, axis=-1), -1)
    chord = xp.linalg.norm(end[:, -1] - start[:, 0], axis=-1)
    whole = xp.all(graph.valid[idx], -1) & exists & (chord > 1e-4)
    return arc / xp.maximum(chord, 1e-4), whole


def tortuosity_index(graph: VesselGraph, cfg: SimConfig, xp=jnp) -> jax.Array:
    """[] mean arc/chord over the whole arteriole/venule branches of a sample."""
    index, whole = branch_tortuosity(graph, cfg, xp)
    return xp.sum(xp.where(whole, index, 0.0)) / xp.maximum(xp.sum(whole), 1)


def faz_shape(faz: Faz, n_vertices: int = 256) -> dict:
    """Area (mm²), perimeter (mm) and circularity 4πA/P² of the FAZ border polygon."""
    theta = jnp.linspace(0.0, 2 * jnp.pi, n_vertices, endpoint=False)
    r = faz.border_radius_mm(theta)
    xy = r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    nxt = jnp.roll(xy, -1, axis=0)
    area = 0.5 * jnp.abs(jnp.sum(xy[:, 0] * nxt[:, 1] - nxt[:, 0] * xy[:, 1]))
    perimeter = jnp.sum(jnp.linalg.norm(nxt - xy, axis=-1))
    return dict(faz_border_area_mm2=area, faz_perimeter_mm=perimeter, faz_circularity=4 * jnp.pi * area / perimeter**2)
