"""A sample's disease record: stage labels, one mask per lesion type, an instance map and findings.

``render_lesions`` turns a ``Disease`` into the lesion signal (added to the superficial layer before
the appearance model) and the ``Lesions`` record; ``no_lesions`` is the record of the healthy pipeline
(all masks empty), which skips the disease stage entirely.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..config import SimConfig, SimParams
from ..faz import Faz
from ..graph import VesselGraph
from . import _irma as irma_lib
from . import _microaneurysm as ma_lib
from . import _neovascularization as nv_lib
from ._chain import Disease
from ._findings import MAX_FINDINGS, SLOT_OFFSETS, SLOT_TYPES, Findings, measure_findings
from ._lesions import LESION_NAMES
from ._measure import faz_shape, tortuosity_index
from ._regions import MAX_EXTENT_MM
from ._render import blob_window, lesion_window, paint_labels, region_window, render_blobs, render_regions, render_tufts, segment_window


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Lesions:
    stage: jax.Array  # [] int32 index into STAGES
    label_dr: jax.Array  # [] bool: any diabetic retinopathy (stage > normal)
    masks: dict  # name -> [H, W] bool, names in LESION_NAMES
    instance: jax.Array  # [H, W] int32: findings slot + 1 of the lesion at each pixel, 0 for none
    findings: Findings  # [MAX_FINDINGS]
    measures: dict  # name -> []: tortuosity_index, faz_circularity, venous_beading, tortuosity_amplitude


def _measures(graph: VesselGraph, faz: Faz, cfg: SimConfig, *, beading, amplitude, fringe=None) -> dict:
    shape = faz_shape(faz, fringe)
    return dict(
        tortuosity_index=tortuosity_index(graph, cfg),
        faz_circularity=shape["faz_circularity"],
        venous_beading=jnp.asarray(beading, jnp.float32),
        tortuosity_amplitude=jnp.asarray(amplitude, jnp.float32),
    )


def no_lesions(graph: VesselGraph, faz: Faz, cfg: SimConfig) -> Lesions:
    size = cfg.field.size_px
    zero = jnp.zeros((MAX_FINDINGS,))
    return Lesions(
        stage=jnp.int32(0),
        label_dr=jnp.bool_(False),
        masks={name: jnp.zeros((size, size), bool) for name in LESION_NAMES},
        instance=jnp.zeros((size, size), jnp.int32),
        findings=Findings(
            type=jnp.asarray(SLOT_TYPES), present=jnp.zeros((MAX_FINDINGS,), bool), center_mm=jnp.zeros((MAX_FINDINGS, 2)),
            center_px=jnp.zeros((MAX_FINDINGS, 2)), bbox_px=jnp.zeros((MAX_FINDINGS, 4), jnp.int32), area_mm2=zero, severity=zero,
        ),
        measures=_measures(graph, faz, cfg, beading=0.0, amplitude=0.0),
    )


def lesion_windows(cfg: SimConfig) -> dict:
    """Static window sizes: per lesion footprint (name) and per tuft segment (name + "_segment")."""
    px_um, aa = cfg.field.pixel_um, cfg.antialias_px
    return dict(
        nonperfusion=region_window(MAX_EXTENT_MM, px_um),
        microaneurysm=blob_window(ma_lib.MAX_RADIUS_UM, ma_lib.MAX_ASPECT, px_um),
        neovascularization=lesion_window(nv_lib.max_extent_mm(), nv_lib.MAX_RADIUS_UM, px_um, aa),
        neovascularization_segment=segment_window(nv_lib.max_segment_mm(), nv_lib.MAX_RADIUS_UM, px_um, aa),
        irma=lesion_window(irma_lib.max_extent_mm(), irma_lib.MAX_RADIUS_UM, px_um, aa),
        irma_segment=segment_window(irma_lib.max_segment_mm(), irma_lib.MAX_RADIUS_UM, px_um, aa),
    )


def render_lesions(disease: Disease, cfg: SimConfig, params: SimParams):
    """(signal [H, W], Lesions): the lesions' superficial signal and their masks and findings."""
    size, px_um, aa = cfg.field.size_px, cfg.field.pixel_um, cfg.antialias_px
    k = lesion_windows(cfg)
    weight = params.pathology.lesion_signal
    ma, nv, irma = disease.microaneurysms, disease.neovascularization, disease.irma
    ma_signal, ma_win = render_blobs(ma, size=size, pixel_um=px_um, window=k["microaneurysm"])
    nv_signal, nv_win = render_tufts(nv, weight, size=size, pixel_um=px_um, segment_k=k["neovascularization_segment"],
                                     lesion_k=k["neovascularization"], antialias_px=aa)
    irma_signal, irma_win = render_tufts(irma, weight, size=size, pixel_um=px_um, segment_k=k["irma_segment"],
                                         lesion_k=k["irma"], antialias_px=aa)
    region_win = render_regions(disease.regions, size=size, pixel_um=px_um, window=k["nonperfusion"])
    windows = dict(nonperfusion=region_win, microaneurysm=ma_win, neovascularization=nv_win, irma=irma_win)
    present = dict(nonperfusion=disease.regions.present, microaneurysm=ma.present, neovascularization=nv.present, irma=irma.present)
    severity = dict(nonperfusion=disease.regions.depth, microaneurysm=ma_lib.severity(ma), neovascularization=nv.severity,
                    irma=irma.severity)
    findings = measure_findings(windows, present, severity, faz_center_mm=disease.faz.center_mm, pixel_um=px_um, size=size)
    labels = {name: paint_labels(windows[name], size) for name in LESION_NAMES}
    masks = {name: labels[name] > 0 for name in LESION_NAMES}
    # Instance map: the findings slot (+1) at each pixel; smaller lesions are drawn over larger ones (NV
    # and IRMA grow from the vessels at the areas' borders, where the microaneurysms also sit).
    instance = jnp.zeros((size, size), jnp.int32)
    for name in ("nonperfusion", "neovascularization", "irma", "microaneurysm"):
        instance = jnp.where(masks[name], labels[name] + SLOT_OFFSETS[name], instance)
    record = Lesions(
        stage=disease.stage,
        label_dr=disease.stage > 0,
        masks=masks,
        instance=instance,
        findings=findings,
        measures=_measures(disease.graph, disease.faz, cfg, beading=disease.venous_beading, amplitude=disease.tortuosity_amplitude,
                           fringe=disease.faz_fringe),
    )
    return weight * ma_signal + nv_signal + irma_signal, record
