"""Composing the operators: a ``Disease`` state threaded through a chain of steps (optax-style).

Each step is a pure ``step(key, disease) -> disease``; ``chain(*steps)`` splits the key and applies
them in order. ``stage_chain`` builds the standard chain for one (traced) stage: counts and strengths
come from ``staging.stage_profile`` and are zero where the stage has no such lesion, so the same
program serves every stage and a healthy sample leaves the chain unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from ..config import PathologyParams, SimConfig
from ..faz import Faz
from ..graph import VesselGraph
from ..growth import mesh_edges, tree_groups
from . import _dropout as dropout_lib
from . import _irma as irma_lib
from . import _microaneurysm as ma_lib
from . import _neovascularization as nv_lib
from ._beading import venous_beading
from ._faz import Fringe, enlarge_faz, no_fringe, prune_faz_border, random_fringe
from ._lesions import Blobs, Tufts
from ._regions import Regions, empty_regions
from ._staging import draw_count
from ._tortuosity import random_tortuosity


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Disease:
    stage: jax.Array  # [] int32
    graph: VesselGraph
    faz: Faz
    regions: Regions  # [MAX_REGIONS] non-perfusion
    microaneurysms: Blobs  # [MAX_MICROANEURYSMS]
    neovascularization: Tufts  # [MAX_TUFTS]
    irma: Tufts  # [MAX_IRMA]
    tortuosity_amplitude: jax.Array  # [] mean lateral amplitude applied (fraction of chord)
    venous_beading: jax.Array  # [] beading amplitude applied
    faz_fringe: Fringe  # the FAZ border's pruned fringe (band 0: none)


Step = Callable[[jax.Array, Disease], Disease]


def chain(*steps: Step) -> Step:
    def apply(key: jax.Array, disease: Disease) -> Disease:
        for step, k in zip(steps, jax.random.split(key, max(len(steps), 1))):
            disease = step(k, disease)
        return disease

    return apply


def healthy(stage: jax.Array, graph: VesselGraph, faz: Faz) -> Disease:
    """A disease state with no lesion at all."""
    zeros2 = lambda n: jnp.zeros((n, 2))  # noqa: E731
    none = lambda n: jnp.zeros((n,), bool)  # noqa: E731
    m, t, i = ma_lib.MAX_MICROANEURYSMS, nv_lib.MAX_TUFTS, irma_lib.MAX_IRMA
    return Disease(
        stage=jnp.asarray(stage, jnp.int32),
        graph=graph,
        faz=faz,
        regions=empty_regions(dropout_lib.MAX_REGIONS),
        microaneurysms=Blobs(center_mm=zeros2(m), axis=jnp.tile(jnp.array([1.0, 0.0]), (m, 1)),
                             radius_um=jnp.full((m,), ma_lib.MIN_RADIUS_UM), aspect=jnp.ones((m,)), present=none(m)),
        neovascularization=nv_lib.neovascularization(zeros2(t), jnp.full((t,), 0.05), jnp.full((t,), 3.0), jnp.zeros((t,)),
                                                     jnp.full((t,), 4.0), none(t)),
        irma=irma_lib.irma(zeros2(i), jnp.tile(jnp.array([1.0, 0.0]), (i, 1)), jnp.full((i,), 0.1), jnp.full((i,), 8.0),
                           jnp.ones((i,)), none(i)),
        tortuosity_amplitude=jnp.zeros(()),
        venous_beading=jnp.zeros(()),
        faz_fringe=no_fringe(),
    )


def stage_chain(profile: dict, pp: PathologyParams, cfg: SimConfig, nasal_sign) -> Step:
    """The standard DR chain: dropout, FAZ border pruning, tortuosity, beading, microaneurysms, NV, IRMA."""
    return chain(*stage_steps(profile, pp, cfg, nasal_sign).values())


def stage_steps(profile: dict, pp: PathologyParams, cfg: SimConfig, nasal_sign) -> dict[str, Step]:
    """The steps of ``stage_chain`` by name, in order (for custom chains and profiling)."""
    fov, pixel_um = cfg.field.fov_mm, cfg.field.pixel_um
    # Microaneurysm sites: the first piece of every superficial capillary edge (a static slice).
    first_capillary = tree_groups(cfg)[-1].stop
    trees = lambda graph: graph.slice(0, first_capillary)  # noqa: E731 - where IRMA / NV grow from
    capillary_sites = (first_capillary, first_capillary + mesh_edges(fov, cfg.growth.capillary_spacing_um))

    def dropout(key, d: Disease) -> Disease:
        k_count, k_regions, k_draw = jax.random.split(key, 3)
        present = draw_count(k_count, profile, "dropout", dropout_lib.MAX_REGIONS)
        regions = dropout_lib.random_regions(
            k_regions, d.faz, present=present, fov_mm=fov,
            radius_lo_mm=profile["dropout_radius_lo_mm"] * pp.dropout_extent,
            radius_hi_mm=profile["dropout_radius_hi_mm"] * pp.dropout_extent,
            depth_lo=profile["dropout_depth_lo"] * pp.dropout_depth, depth_hi=profile["dropout_depth_hi"] * pp.dropout_depth,
            arterioles=trees(d.graph),
        )
        graph = dropout_lib.random_dropout(k_draw, d.graph, regions, softness_mm=pp.dropout_softness_mm, fov_mm=fov,
                                           capillary_loss=profile["capillary_loss"] * pp.rarefaction_gain, n_tree=first_capillary)
        return dataclasses.replace(d, graph=graph, regions=regions)

    def faz_border(key, d: Disease) -> Disease:
        fringe = random_fringe(key, band_mm=profile["faz_fringe_mm"] * pp.faz_enlargement)
        return dataclasses.replace(d, graph=prune_faz_border(d.graph, d.faz, fringe), faz_fringe=fringe)

    def tortuosity(key, d: Disease) -> Disease:
        amplitude = profile["tortuosity"] * pp.tortuosity_gain
        graph = random_tortuosity(key, d.graph, cfg, amplitude=amplitude)
        return dataclasses.replace(d, graph=graph, tortuosity_amplitude=amplitude)

    def beading(key, d: Disease) -> Disease:
        amplitude = profile["beading"] * pp.beading_gain
        return dataclasses.replace(d, graph=venous_beading(d.graph, cfg, amplitude=amplitude), venous_beading=amplitude)

    def microaneurysms(key, d: Disease) -> Disease:
        k_count, k_ma = jax.random.split(key)
        present = draw_count(k_count, profile, "ma", ma_lib.MAX_MICROANEURYSMS)
        blobs = ma_lib.random_microaneurysms(
            k_ma, d.graph, d.faz, d.regions, present=present, radius_um=pp.ma_radius_um, radius_sd=pp.ma_radius_sd,
            border_fraction=pp.ma_border_fraction, fov_mm=fov, pixel_um=pixel_um, candidates=capillary_sites,
        )
        return dataclasses.replace(d, microaneurysms=blobs)

    def neovascularization(key, d: Disease) -> Disease:
        k_count, k_nv = jax.random.split(key)
        present = draw_count(k_count, profile, "nv", nv_lib.MAX_TUFTS)
        tufts = nv_lib.random_neovascularization(
            k_nv, d.regions, present=present, size_mm=pp.nv_size_mm, radius_um=pp.nv_radius_um, fov_mm=fov,
            faz_center_mm=d.faz.center_mm, nasal_sign=nasal_sign, vessels=trees(d.graph),
        )
        return dataclasses.replace(d, neovascularization=tufts)

    def irma(key, d: Disease) -> Disease:
        k_count, k_irma = jax.random.split(key)
        present = draw_count(k_count, profile, "irma", irma_lib.MAX_IRMA)
        tufts = irma_lib.random_irma(k_irma, d.regions, present=present, length_mm=pp.irma_length_mm,
                                     radius_um=pp.irma_radius_um, fov_mm=fov, vessels=trees(d.graph))
        return dataclasses.replace(d, irma=tufts)

    return dict(dropout=dropout, faz_border=faz_border, tortuosity=tortuosity, beading=beading, microaneurysms=microaneurysms,
                neovascularization=neovascularization, irma=irma)


def faz_enlargement(profile: dict, pp: PathologyParams) -> Callable[[Faz], Faz]:
    """The stage's FAZ change as a ``Faz -> Faz`` hook for growth."""
    gain = pp.faz_enlargement
    return lambda faz: enlarge_faz(
        faz,
        area_scale=1.0 + gain * (profile["faz_area_scale"] - 1.0),
        irregularity_scale=1.0 + gain * (profile["faz_irregularity_scale"] - 1.0),
    )

