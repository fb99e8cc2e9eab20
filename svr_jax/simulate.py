"""``simulate(key, params, cfg)``: the one composition point, grow -> render -> appearance -> measure.

With a disease stage (``simulate(key, params, cfg, stage="mixed")``, see ``svr_jax.pathology``) the
list becomes grow (with the stage's FAZ change) -> pathology chain -> render graph and lesions ->
appearance -> measure. The disease draws come from their own key stream (``PATHOLOGY_STREAM`` folded
into the sample key), so the healthy parts of a diseased sample are those of the healthy sample.

Each stage is a pure function; ``simulate`` reads as their list. It is unbatched and uncompiled: the
caller applies ``jax.vmap`` over keys and ``jax.jit`` with ``cfg`` static, e.g.

    keys = sample_keys(seed, jnp.arange(64))
    batch = jax.jit(jax.vmap(simulate, in_axes=(0, None, None)), static_argnums=2)(keys, params, cfg)

A sample is a pure function of (cfg, params, seed, index): ``sample_keys`` folds the index into the
seed's key, so any sample can be regenerated alone, in any order, on any device.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import colonisation, growth, measure
from . import pathology
from .appearance import apply_appearance
from .config import SimConfig, SimParams
from .faz import Faz, sample_faz
from .graph import ARTERY, CAPILLARY, DEEP_CAPILLARY, VEIN, SegmentGroup, VesselGraph, concatenate
from .render import render_windowed, window_size

LARGE_VESSEL_MIN_DIAMETER_UM = 15.0  # OCTA-500's "large vessel" labels: vessels wider than capillaries
MASK_NAMES = ("vessel", "artery", "vein", "capillary", "large_vessel", "faz")
PATHOLOGY_STREAM = 0xD12  # folded into a sample's key for every disease draw


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Anatomy:
    """The sampled structure of one eye before rendering."""

    graph: VesselGraph
    faz: Faz
    nasal_sign: jax.Array  # +1: optic disc to the right (OD), -1: to the left (OS)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Sample:
    image: jax.Array  # [H, W] float32 in [0, 1]
    signal: jax.Array  # [H, W] noise-free superficial vessel signal (before appearance)
    masks: dict  # name -> [H, W] bool, names in MASK_NAMES (vessel includes NV and IRMA vessels)
    anatomy: Anatomy
    stats: dict  # name -> [] measured scalars (see measure.image_statistics)
    lesions: pathology.Lesions  # stage labels, lesion masks, instance map, findings (empty when healthy)


def sample_keys(seed: int, indices: jax.Array) -> jax.Array:
    """The key of sample ``index`` under ``seed``: independent of batch size and order."""
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)


def segment_groups(cfg: SimConfig, *, diseased: bool = False) -> list[SegmentGroup]:
    """Static layout of the graph: tree generations, then the superficial and deep meshes.

    ``diseased``: the tree windows allow for the tortuosity and venous-beading operators.
    """
    g = cfg.growth
    groups = growth.tree_groups(cfg)
    if diseased:
        groups = [
            grp._replace(max_span_px=grp.max_span_px * pathology.SPAN_SLACK, max_radius_px=grp.max_radius_px * pathology.RADIUS_SLACK)
            for grp in groups
        ]
    start = groups[-1].stop
    groups.append(growth.mesh_group(cfg, "capillary", start, g.capillary_spacing_um, g.capillary_subdivisions))
    groups.append(growth.mesh_group(cfg, "deep", groups[-1].stop, g.deep_spacing_um, g.deep_subdivisions, scale=cfg.deep_downsample))
    return groups


def segments_capacity(cfg: SimConfig) -> int:
    return segment_groups(cfg)[-1].stop


def grow(key: jax.Array, params: SimParams, cfg: SimConfig, *, faz_transform=None, drop_oversized: bool = True) -> Anatomy:
    """Sample the FAZ, the arteriole/venule trees and both capillary meshes.

    ``faz_transform``: optional ``Faz -> Faz`` applied to the sampled FAZ before the vessels grow
    around it (the disease stage's FAZ enlargement).
    """
    vp = params.vessels
    k_side, k_faz, k_trees, k_cap, k_deep = jax.random.split(key, 5)
    fov = cfg.field.fov_mm
    nasal_sign = jnp.where(jax.random.bernoulli(k_side), 1.0, -1.0)
    faz = sample_faz(
        k_faz,
        center_mm=jnp.full(2, 0.5 * fov),
        area_mm2=vp.faz_area_mm2,
        area_sd_mm2=vp.faz_area_sd_mm2,
        irregularity=vp.faz_irregularity,
        offset_sd_mm=vp.faz_offset_sd_mm,
    )
    if faz_transform is not None:
        faz = faz_transform(faz)
    grow_trees = colonisation.grow_colonised if cfg.growth.architecture == "colonisation" else growth.grow_trees
    trees = grow_trees(k_trees, vp, cfg, faz, nasal_sign)
    mesh = partial(growth.grow_mesh, cfg=cfg, jitter=vp.capillary_jitter, wiggle=vp.capillary_wiggle,
                   displacement=vp.foveal_displacement)
    capillaries = mesh(
        k_cap,
        faz=faz,
        spacing_um=cfg.growth.capillary_spacing_um,
        subdivisions=cfg.growth.capillary_subdivisions,
        kind=CAPILLARY,
        radius_um=vp.capillary_radius_um,
        presence=vp.capillary_presence,
    )
    # The deeper plexus's own avascular zone is smaller: its projection softens the FAZ border.
    deep = mesh(
        k_deep,
        faz=dataclasses.replace(faz, radius_mm=0.75 * faz.radius_mm),
        spacing_um=cfg.growth.deep_spacing_um,
        subdivisions=cfg.growth.deep_subdivisions,
        kind=DEEP_CAPILLARY,
        radius_um=vp.capillary_radius_um,
        presence=vp.deep_presence,
    )
    graph = concatenate([trees, capillaries, deep])
    if drop_oversized:  # off only in the test that counts how many are dropped
        graph = dataclasses.replace(graph, valid=graph.valid & fits_windows(graph, cfg))
    return Anatomy(graph=graph, faz=faz, nasal_sign=nasal_sign)


def fits_windows(graph: VesselGraph, cfg: SimConfig, *, diseased: bool = False) -> jax.Array:
    """[N] bool: the segment lies within its group's static extent bound (true for all but freak draws)."""
    groups = segment_groups(cfg, diseased=diseased)
    pixel_um = jnp.concatenate([jnp.full(g.stop - g.start, _group_pixel_um(g, cfg)) for g in groups])
    span_px = jnp.max(jnp.abs(graph.end_mm - graph.start_mm), axis=-1) * 1000.0 / pixel_um
    bound = jnp.concatenate([jnp.full(g.stop - g.start, g.max_span_px) for g in groups])
    radius_bound = jnp.concatenate([jnp.full(g.stop - g.start, g.max_radius_px) for g in groups])
    return (span_px <= bound) & (graph.radius_um / pixel_um <= radius_bound)


def _group_pixel_um(group: SegmentGroup, cfg: SimConfig) -> float:
    return cfg.field.pixel_um * (cfg.deep_downsample if group.name == "deep" else 1)


def render_signal(graph: VesselGraph, cfg: SimConfig, params: SimParams, *, renderer=render_windowed, diseased: bool = False,
                  trees_only: bool = False):
    """Noise-free layers and hard masks of a graph.

    Returns (superficial [H, W], deep [H, W], hard [H, W, 4]): hard channels (artery, vein,
    large_vessel, capillary) count the segments covering each pixel. The deeper plexus is splatted on a
    ``deep_downsample`` times coarser canvas and upsampled (it is only ever seen blurred) and has no mask.
    ``trees_only``: the arteriole/venule trees alone (their masks without the cost of the meshes; deep is None).
    """
    size = cfg.field.size_px
    ap = params.appearance
    signal_of_kind = jnp.stack([ap.vessel_signal, ap.vessel_signal, ap.capillary_signal, 1.0])
    superficial = jnp.zeros((size, size))
    hard = jnp.zeros((size, size, 4), jnp.int32)
    deep = None
    for group in segment_groups(cfg, diseased=diseased):
        if trees_only and group.name in ("capillary", "deep"):
            continue
        g = graph.slice(group.start, group.stop)
        pixel_um = _group_pixel_um(group, cfg)
        canvas = int(round(size * cfg.field.pixel_um / pixel_um))
        alive = g.valid.astype(jnp.float32)
        soft_w = (alive * g.perfusion * signal_of_kind[g.kind])[:, None]
        if group.name == "deep":
            hard_w = jnp.zeros((g.capacity, 0))
        elif group.name == "capillary":
            hard_w = alive[:, None]
        else:
            large = g.radius_um * 2 >= LARGE_VESSEL_MIN_DIAMETER_UM
            hard_w = alive[:, None] * jnp.stack([g.kind == ARTERY, g.kind == VEIN, large], -1).astype(jnp.float32)
        kwargs = dict(height=canvas, width=canvas, antialias_px=cfg.antialias_px)
        if renderer is render_windowed:
            kwargs["window"] = window_size(group.max_span_px, group.max_radius_px, cfg.antialias_px)
        to_px = 1000.0 / pixel_um
        soft, h = renderer(g.start_mm * to_px, g.end_mm * to_px, g.radius_um / pixel_um, soft_w, hard_w, **kwargs)
        if group.name == "deep":
            deep = jax.image.resize(soft[..., 0], (size, size), "linear")
        elif group.name == "capillary":
            superficial = superficial + soft[..., 0]
            hard = hard.at[..., 3].add(h[..., 0])
        else:
            superficial = superficial + soft[..., 0]
            hard = hard.at[..., :3].add(h)
    return superficial, deep, hard


def pixel_centers_mm(cfg: SimConfig) -> jax.Array:
    size, px_mm = cfg.field.size_px, cfg.field.pixel_um / 1000.0
    c = (jnp.arange(size) + 0.5) * px_mm
    yy, xx = jnp.meshgrid(c, c, indexing="ij")
    return jnp.stack([xx, yy], -1)


def faz_depth_map(faz: Faz, cfg: SimConfig) -> jax.Array:
    """[H, W] signed depth of each pixel centre inside the FAZ border, mm (negative outside); the
    appearance fades the signal by it and the FAZ mask is where it is positive."""
    return faz.signed_depth_mm(pixel_centers_mm(cfg))


def masks_from_hard(hard: jax.Array, faz_depth_mm: jax.Array) -> dict:
    artery, vein, large, capillary = (hard[..., i] > 0 for i in range(4))
    vessel = artery | vein | capillary
    # The FAZ mask is what a grader would outline: the region inside the border with no vessel in it.
    faz_mask = (faz_depth_mm > 0) & ~vessel
    return dict(vessel=vessel, artery=artery, vein=vein, capillary=capillary, large_vessel=large, faz=faz_mask)


def simulate(key: jax.Array, params: SimParams, cfg: SimConfig, stage="normal") -> Sample:
    """One synthetic OCTA sample. Pure; vmap over ``key``, jit with ``cfg`` (and ``stage``) static.

    ``stage``: a name in ``pathology.STAGE_CHOICES`` or a ``pathology.PathologyConfig`` (static), or an
    array (traced): [] int, the stage (e.g. vmapped per-sample stages of a balanced set), or
    [len(STAGES)] float, the weights each sample draws its stage from (``pathology.stage_weights``:
    one program for every mixture and DR stage). ``"normal"`` is the healthy pipeline, with no disease
    code traced at all.
    """
    if not _is_stage_array(stage) and not pathology.as_config(stage).active:
        return _simulate_healthy(key, params, cfg)
    k_look = jax.random.split(key)[1]
    anatomy, disease = grow_diseased(key, params, cfg, stage)
    with jax.named_scope("render"):
        superficial, deep, hard = render_signal(anatomy.graph, cfg, params, diseased=True)
        lesion_signal, lesions = pathology.render_lesions(disease, cfg, params)
        superficial = superficial + lesion_signal
    with jax.named_scope("appearance"):
        faz_depth = faz_depth_map(anatomy.faz, cfg)
        image = apply_appearance(k_look, params.appearance, superficial, deep, cfg, faz_depth)
    # The FAZ mask takes in the pruned fringe of a DR FAZ's border (the vessel-free zone a grader outlines).
    masks = masks_from_hard(hard, pathology.ragged_depth_mm(anatomy.faz, disease.faz_fringe, pixel_centers_mm(cfg)))
    # NV and IRMA are vessels too: in the vessel mask (and out of the FAZ mask) as in the image.
    new_vessels = lesions.masks["neovascularization"] | lesions.masks["irma"]
    masks = dict(masks, vessel=masks["vessel"] | new_vessels, faz=masks["faz"] & ~new_vessels)
    stats = measure.image_statistics(image, masks, anatomy.graph, cfg)
    return Sample(image=image, signal=superficial, masks=masks, anatomy=anatomy, stats=stats, lesions=lesions)


def grow_diseased(key: jax.Array, params: SimParams, cfg: SimConfig, stage) -> tuple[Anatomy, "pathology.Disease"]:
    """The anatomy of a sample of ``stage`` (not ``"normal"``) and its disease state, before rendering.

    Uses the same keys as ``simulate``: ``pathology.render_lesions`` of the result gives the sample's
    lesion masks and findings without rendering the vessels (a fast path for lesion statistics).
    """
    k_grow = jax.random.split(key)[0]
    k_stage, k_chain = jax.random.split(jax.random.fold_in(key, PATHOLOGY_STREAM))
    with jax.named_scope("pathology"):
        if _is_stage_array(stage) and np.ndim(stage) == 1:
            stage_id = pathology.draw_weighted_stage(k_stage, stage)
        elif _is_stage_array(stage):
            stage_id = jnp.asarray(stage, jnp.int32)
        else:
            stage_id = pathology.draw_stage(k_stage, pathology.as_config(stage))
        profile = pathology.stage_profile(stage_id)
    with jax.named_scope("grow"):
        anatomy = grow(k_grow, params, cfg, faz_transform=pathology.faz_enlargement(profile, params.pathology))
    with jax.named_scope("pathology"):
        disease = pathology.healthy(stage_id, anatomy.graph, anatomy.faz)
        disease = pathology.stage_chain(profile, params.pathology, cfg, anatomy.nasal_sign)(k_chain, disease)
        graph = disease.graph
        graph = dataclasses.replace(graph, valid=graph.valid & fits_windows(graph, cfg, diseased=True))
    return dataclasses.replace(anatomy, graph=graph), dataclasses.replace(disease, graph=graph)


def _is_stage_array(stage) -> bool:
    return isinstance(stage, (jax.Array, np.ndarray))


def _simulate_healthy(key: jax.Array, params: SimParams, cfg: SimConfig) -> Sample:
    k_grow, k_look = jax.random.split(key)
    with jax.named_scope("grow"):
        anatomy = grow(k_grow, params, cfg)
    with jax.named_scope("render"):
        superficial, deep, hard = render_signal(anatomy.graph, cfg, params)
    with jax.named_scope("appearance"):
        faz_depth = faz_depth_map(anatomy.faz, cfg)
        image = apply_appearance(k_look, params.appearance, superficial, deep, cfg, faz_depth)
    masks = masks_from_hard(hard, faz_depth)
    stats = measure.image_statistics(image, masks, anatomy.graph, cfg)
    lesions = pathology.no_lesions(anatomy.graph, anatomy.faz, cfg)
    return Sample(image=image, signal=superficial, masks=masks, anatomy=anatomy, stats=stats, lesions=lesions)


simulate_batch = jax.vmap(simulate, in_axes=(0, None, None))
