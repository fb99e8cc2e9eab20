"""Capillary dropout (non-perfusion): capillaries inside irregular regions lose their flow.

``dropout(key?, graph, regions)`` lowers the soft ``perfusion`` of CAPILLARY and DEEP_CAPILLARY
segments, and of the terminal arterioles and venules narrower than ``FLOW_KEEPING_DIAMETER_UM`` (the
precapillary vessels of the lost territory close with it), by a soft region membership m (a sigmoid of
the signed distance to the region's border, centred a little *outside* the border so that the whole
hard region mask is in the complete-loss zone).
Partial dropout rarefies rather than dims: a capillary with a uniform draw u is lost with a soft weight
sigmoid((depth · m - u) / τ), so depth 0.5 removes about half the capillaries and depth 1 all of them.
A capillary with loss > 1/2 is also made invalid, so the vessel and capillary masks agree with the
image. Arterioles and venules of ``FLOW_KEEPING_DIAMETER_UM`` (15 µm, the large-vessel masks' calibre)
and wider pass through with their flow: a non-perfused area is crossed by the larger vessels, as in
real eyes, while its capillary bed (both plexuses) is gone.

Regions are biased to the para-/perifoveal ring: their centres lie at a random angle, 0.3-1.3 mm
(scaled with the field) outside the FAZ border; given the arterioles, each region takes the farthest
from any arteriole (up to ``CLEARANCE_MM``) of ``PLACEMENT_CANDIDATES`` such draws (capillary
loss in DR lies in the territory between the arterioles, the watershed of their supply). Their
borders are roughened (``_regions``).

Diffuse rarefaction: OCTA shows capillary loss across the whole field already in mild NPDR, before any
focal non-perfusion area (superficial vessel density falls by roughly 5-8 % of its normal value in mild,
10-15 % in moderate and ~20 % in severe NPDR; e.g. Durbin et al., JAMA Ophthalmol 2017; Samara et al.,
Ophthalmology 2017). ``diffuse`` adds a loss level per capillary, a stage's mean capillary loss times a
smooth random ``patchiness`` field (mean 1), so the loss is uneven as in real eyes; it goes through the
same soft loss as the regions. It is not a lesion: no region, no finding; the vessel and capillary
masks, and the densities measured from them, show it.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from ..faz import Faz
from ..graph import ARTERY, CAPILLARY, DEEP_CAPILLARY, VesselGraph, combine_ancestors
from ._anchor import closest_points_mm
from ._regions import N_HARMONICS, NOISE_WAVES, Regions, make_regions, signed_depth_mm

MAX_REGIONS = 6
LOSS_TEMPERATURE = 0.02
MAX_DRAW = 0.9  # u ~ U(0, 0.9): a depth-1 core leaves no capillary behind
BORDER_MARGIN = 2.5  # softness widths by which the loss zone extends outside the region's border
GRID_MM = 0.03  # membership grid spacing (a quarter of the shortest border-roughness wavelength)
FLOW_KEEPING_DIAMETER_UM = 15.0  # tree vessels at least this wide keep their flow through a region
PLACEMENT_CANDIDATES = 8  # centre draws per region; the one farthest from the arterioles is kept ...
CLEARANCE_MM = 0.15  # ... up to this clearance (at 3 mm, scaled with the field): about half the spacing of the
# parafovea's arterioles, so that the area's centre lies between two of them
NOISE_WAVELENGTH_MM = (0.12, 0.35)  # border roughness: a few capillary meshes to a terminal arteriole's territory
NOISE_SD = 0.3  # of η, relative to the region's radius
PATCH_MODES = 8  # random plane waves summed into the patchiness field
PATCH_WAVELENGTH_MM = (0.35, 1.2)  # from a few capillary meshes to a sector
PATCH_CONTRAST = 0.8  # sd of the patchiness around its mean of 1 (before clipping to [0, 2])


def membership(regions: Regions, points_mm: jax.Array, softness_mm) -> jax.Array:
    """[...]: soft membership of points [..., 2] in the union of regions, weighted by depth."""
    depth = signed_depth_mm(regions, points_mm)  # [R, ...]
    softness = jnp.maximum(softness_mm, 1e-3)
    weight = (regions.depth * regions.present).reshape((-1,) + (1,) * (points_mm.ndim - 1))
    return jnp.max(jax.nn.sigmoid(depth / softness + BORDER_MARGIN) * weight, axis=0)


def membership_grid(regions: Regions, points_mm: jax.Array, softness_mm, *, fov_mm: float) -> jax.Array:
    """``membership`` at points [N, 2], bilinearly interpolated from a ``GRID_MM`` grid over the field
    (the smooth membership is evaluated at a few thousand nodes instead of every capillary)."""
    n = int(math.ceil(fov_mm / GRID_MM)) + 1
    axis = jnp.linspace(0.0, fov_mm, n)
    nodes = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij")[::-1], -1)  # [n(y), n(x), 2] as (x, y)
    grid = membership(regions, nodes, softness_mm)
    coords = jnp.clip(points_mm[:, ::-1] * ((n - 1) / fov_mm), 0.0, n - 1.0)  # (row, column)
    return jax.scipy.ndimage.map_coordinates(grid, [coords[:, 0], coords[:, 1]], order=1)


def patchiness(key: jax.Array, points_mm: jax.Array) -> jax.Array:
    """[N] smooth random field at points [N, 2], mean 1, clipped to [0, 2]: a sum of ``PATCH_MODES``
    plane waves of random direction, wavelength and phase (unit variance before the contrast)."""
    k_angle, k_length, k_phase = jax.random.split(key, 3)
    angle = jax.random.uniform(k_angle, (PATCH_MODES,), maxval=2 * jnp.pi)
    wavelength = jax.random.uniform(k_length, (PATCH_MODES,), minval=PATCH_WAVELENGTH_MM[0], maxval=PATCH_WAVELENGTH_MM[1])
    wave = (2 * jnp.pi / wavelength)[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)  # [M, 2] rad/mm
    phase = jax.random.uniform(k_phase, (PATCH_MODES,), maxval=2 * jnp.pi)
    field = jnp.sqrt(2.0 / PATCH_MODES) * jnp.sum(jnp.cos(points_mm @ wave.T + phase), -1)
    return jnp.clip(1.0 + PATCH_CONTRAST * field, 0.0, 2.0)


def dropout(graph: VesselGraph, regions: Regions, *, draw: jax.Array, softness_mm=0.02, fov_mm: float = 3.0,
            diffuse: jax.Array | None = None, n_tree: int | None = None) -> VesselGraph:
    """Deterministic twin: capillaries (``draw`` [N] uniform in [0, 0.9]) lose perfusion in ``regions``
    (of a field of ``fov_mm``) and, where given, by the diffuse loss level ``diffuse`` [N] (in the units
    of ``draw``: a level e removes a fraction e / 0.9 of the capillaries); tree vessels narrower than
    ``FLOW_KEEPING_DIAMETER_UM`` lose it where the regions' membership exceeds 1/2, with their subtrees
    (``n_tree``: the static number of tree slots at the front of the graph, where the subtrees are looked
    for; default all)."""
    midpoint = 0.5 * (graph.start_mm + graph.end_mm)
    capillary = (graph.kind == CAPILLARY) | (graph.kind == DEEP_CAPILLARY)
    small_tree = (graph.kind < CAPILLARY) & (2.0 * graph.radius_um < FLOW_KEEPING_DIAMETER_UM)
    effective = membership_grid(regions, midpoint, softness_mm, fov_mm=fov_mm)
    if diffuse is not None:  # rarefaction is of capillaries only
        effective = jnp.where(capillary, jnp.maximum(effective, diffuse), effective)
    # A terminal vessel closes as a whole where the membership passes one half (not piece by piece).
    draw = jnp.where(small_tree, 0.5, draw)
    loss = jnp.where(capillary | small_tree, jax.nn.sigmoid((effective - draw) / LOSS_TEMPERATURE), 0.0)
    # Healthy (no present region): effective == 0 and loss ~ sigmoid(-u/τ) must not change anything.
    loss = jnp.where(effective > 0, loss, 0.0)
    # A closed terminal vessel takes its whole subtree with it (no perfused fragment beyond the area).
    n = graph.capacity if n_tree is None else n_tree
    cut = downstream((small_tree & (loss >= 0.5))[:n], graph.parent[:n]) & ~(loss[:n] >= 0.5)
    loss = loss.at[:n].set(jnp.where(cut, 1.0, loss[:n]))
    return dataclasses.replace(graph, perfusion=graph.perfusion * (1.0 - loss), valid=graph.valid & (loss < 0.5))


def downstream(closed: jax.Array, parent: jax.Array) -> jax.Array:
    """[N] bool: segments with a ``closed`` [N] ancestor (or closed themselves), following ``parent``
    (pointer jumping: log2 N gathers instead of a walk as deep as the tree)."""
    return combine_ancestors(closed, parent, max(1, math.ceil(math.log2(max(parent.shape[0], 2)))), jnp.logical_or)


def random_regions(
    key: jax.Array, faz: Faz, *, present: jax.Array, radius_lo_mm, radius_hi_mm, depth_lo, depth_hi, fov_mm: float,
    arterioles: VesselGraph | None = None,
) -> Regions:
    """Non-perfusion regions in the para-/perifoveal ring, with rough borders; ``present`` [R] bool fixes
    the count; given ``arterioles`` (tree segments), centres are placed away from the ARTERY ones."""
    capacity = present.shape[0]
    k_ang, k_dist, k_rad, k_amp, k_phase, k_depth, k_noise = jax.random.split(key, 7)
    tries = 1 if arterioles is None else PLACEMENT_CANDIDATES
    angle = jax.random.uniform(k_ang, (capacity, tries), maxval=2 * jnp.pi)
    ring_mm = (fov_mm / 3.0) * jax.random.uniform(k_dist, (capacity, tries), minval=0.3, maxval=1.3)
    direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    center = faz.center_mm + (faz.border_radius_mm(angle) + ring_mm)[..., None] * direction  # [R, T, 2]
    center = jnp.clip(center, 0.05 * fov_mm, 0.95 * fov_mm)
    if arterioles is not None:
        usable = arterioles.valid & (arterioles.kind == ARTERY)
        clearance = closest_points_mm(center.reshape(-1, 2), arterioles, usable)[1].reshape(capacity, tries)
        # Clearances beyond CLEARANCE_MM count alike (the first such draw wins): areas avoid the arterioles
        # without all being pushed to the field's vessel-poor edges.
        enough = CLEARANCE_MM * fov_mm / 3.0
        best = jnp.argmax(jnp.where(jnp.isfinite(clearance), jnp.minimum(clearance, enough), enough), -1)
        center = jnp.take_along_axis(center, best[:, None, None], 1)
    center = center[:, 0]
    radius = radius_lo_mm + (radius_hi_mm - radius_lo_mm) * jax.random.uniform(k_rad, (capacity,))
    harmonic = jnp.arange(2, 2 + N_HARMONICS, dtype=jnp.float32)
    amplitude = 0.25 * jax.random.normal(k_amp, (capacity, N_HARMONICS)) / harmonic * 2.0
    phase = jax.random.uniform(k_phase, (capacity, N_HARMONICS), maxval=2 * jnp.pi)
    depth = depth_lo + (depth_hi - depth_lo) * jax.random.uniform(k_depth, (capacity,))
    k_dir, k_len, k_shift = jax.random.split(k_noise, 3)
    wave_angle = jax.random.uniform(k_dir, (capacity, NOISE_WAVES), maxval=2 * jnp.pi)
    wavelength = jax.random.uniform(k_len, (capacity, NOISE_WAVES), minval=NOISE_WAVELENGTH_MM[0], maxval=NOISE_WAVELENGTH_MM[1])
    wave = (2 * jnp.pi / wavelength)[..., None] * jnp.stack([jnp.cos(wave_angle), jnp.sin(wave_angle)], -1)
    noise_phase = jax.random.uniform(k_shift, (capacity, NOISE_WAVES), maxval=2 * jnp.pi)
    return make_regions(center, radius, amplitude, phase, depth, present, noise_wave=wave, noise_phase=noise_phase,
                        noise_sd=NOISE_SD)


def random_dropout(key: jax.Array, graph: VesselGraph, regions: Regions, *, softness_mm=0.02, fov_mm: float = 3.0,
                   capillary_loss=0.0, n_tree: int | None = None) -> VesselGraph:
    """``dropout`` with each capillary's loss threshold drawn from ``key``; ``capillary_loss`` is the mean
    fraction of capillaries lost diffusely (0: none, the graph is unchanged)."""
    draw = jax.random.uniform(key, (graph.capacity,), maxval=MAX_DRAW)
    midpoint = 0.5 * (graph.start_mm + graph.end_mm)
    diffuse = capillary_loss * MAX_DRAW * patchiness(jax.random.fold_in(key, 1), midpoint)
    return dropout(graph, regions, draw=draw, softness_mm=softness_mm, fov_mm=fov_mm, diffuse=diffuse, n_tree=n_tree)
