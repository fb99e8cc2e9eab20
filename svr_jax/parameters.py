"""Per-parameter metadata in one place: the valid range and unit of every ``SimParams`` leaf, and the fit
bounds and per-eye spread of those that a fit moves or the population variability draws.

Valid ranges (``VALID``) are what the renderer's static windows and each parameter's meaning allow, and
``check_params`` refuses anything else (NaN / inf included) before a simulation runs; they are wider than
the fit bounds, which are a prior for the optimiser (a test checks that every fit range and every preset
value lies inside them).

``parameter_table()`` is the one table to read (``path -> ParamInfo``); ``DEFAULT_FIT_PARAMS`` /
``EXTRA_FIT_PARAMS`` (``svr_jax.fit``) and ``SPREADS`` (``svr_jax.variability``) are the sources it is
built from, kept as tuples because their order matters (the variability draws its normals by index).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Sequence

from .appearance import (BORDER_FLOOR_FIELDS, BORDER_GAIN_FIELDS, FIELD_GAIN_FIELDS, MAX_DEEP_BLUR_UM, MAX_PSF_UM,
                         MAX_TEXTURE_UM, MTF_FIELDS, TONE_FIELDS)
from .colonisation import MAX_DEMAND_EXPONENT, MIN_DEMAND_EXPONENT, MIN_SINK_MM
from .growth import MAX_BRANCH_DECAY, MAX_CAPILLARY_JITTER, MAX_CAPILLARY_WIGGLE, MAX_FOVEAL_DISPLACEMENT, MAX_ROOT_VERTICAL_BIAS

if TYPE_CHECKING:
    from .config import SimConfig, SimParams


@dataclasses.dataclass(frozen=True)
class FitParam:
    path: str  # "group.field" inside SimParams, e.g. "appearance.gain"
    lo: float
    hi: float


# What a realism fit moves, with valid ranges. Upper bounds of widths/radii/jitter stay below the static
# window bounds of SimConfig / appearance (MAX_PSF_UM, MAX_DEEP_BLUR_UM, MAX_TEXTURE_UM, window sizes).
DEFAULT_FIT_PARAMS: tuple[FitParam, ...] = (
    FitParam("appearance.vessel_signal", 0.3, 3.0),
    FitParam("appearance.capillary_signal", 0.2, 3.0),
    FitParam("appearance.deep_signal", 0.0, 2.0),
    FitParam("appearance.deep_blur_um", 2.0, 24.0),
    FitParam("appearance.texture_strength", 0.0, 0.9),
    FitParam("appearance.texture_scale_um", 8.0, 58.0),
    FitParam("appearance.speckle", 0.05, 1.2),
    FitParam("appearance.oct_noise", 0.0, 0.5),  # with SimConfig.noise = "decorrelation" (speckle without)
    FitParam("appearance.background", 0.0, 0.4),
    FitParam("appearance.background_noise", 0.0, 0.3),
    FitParam("appearance.psf_sigma_um", 1.0, 19.0),
    FitParam("appearance.psf_aspect", 0.5, 2.0),
    *(FitParam(f"appearance.{name}", -1.0, 1.0) for name in MTF_FIELDS),
    FitParam("appearance.gain", 0.3, 4.0),
    FitParam("appearance.gamma", 0.4, 2.5),
    *(FitParam(f"appearance.{name}", -1.0, 1.0) for name in TONE_FIELDS),
    FitParam("appearance.white_point", 0.6, 1.2),
    FitParam("appearance.detail_bright_gain", 0.5, 1.6),
    FitParam("appearance.detail_dark_gain", 0.5, 1.6),
    FitParam("appearance.falloff", -0.5, 0.6),
    *(FitParam(f"appearance.{name}", -1.0, 1.0) for name in FIELD_GAIN_FIELDS),
    FitParam("appearance.illumination_sd", 0.0, 0.6),
    FitParam("appearance.parafovea_dim", 0.0, 0.9),
    FitParam("appearance.parafovea_mm", 0.03, 0.6),
    FitParam("appearance.foveal_background_dim", 0.0, 0.95),
    *(FitParam(f"appearance.{name}", -1.5, 1.5) for name in BORDER_GAIN_FIELDS + BORDER_FLOOR_FIELDS),
    FitParam("appearance.line_artifact_rate", 0.0, 0.1),
    FitParam("appearance.line_artifact_strength", 0.0, 0.8),
    FitParam("vessels.capillary_presence", 0.4, 1.0),
    FitParam("vessels.deep_presence", 0.3, 1.0),
    FitParam("vessels.capillary_radius_um", 1.5, 5.8),
    FitParam("vessels.root_radius_um", 10.0, 36.0),
    FitParam("vessels.tortuosity_rad", 0.05, 0.8),
    FitParam("vessels.fovea_attraction", 0.0, 0.03),
    FitParam("vessels.branch_length_mm", 0.3, 2.0),  # growth clips it at GrowthConfig.max_branch_length_mm
    FitParam("vessels.faz_area_mm2", 0.15, 0.45),
    FitParam("vessels.capillary_jitter", 0.0, 0.4),
    FitParam("vessels.capillary_wiggle", 0.0, 0.25),
    FitParam("vessels.foveal_displacement", 0.0, 0.6),
)


def active_fit_params(fit_params: Sequence[FitParam], cfg: SimConfig) -> tuple[FitParam, ...]:
    """``fit_params`` without the values that the image does not depend on under ``cfg``'s static modes:
    the noise model not in use (``speckle`` with the drawn decorrelation, ``oct_noise`` without) and the
    white point not in use (``white_point`` with the percentile white point, ``saturated_fraction``
    with the fixed one). Their gradient is zero, so a fitted value would only be its start value
    written into the preset as if it meant something."""
    dead = {
        "appearance.speckle" if cfg.noise == "decorrelation" else "appearance.oct_noise",
        "appearance.white_point" if cfg.white_point == "percentile" else "appearance.saturated_fraction",
    }
    return tuple(p for p in fit_params if p.path not in dead)


# Fittable when asked for by name (``fit_params=[...]``), not by default: fitted from the preset they
# did not bring the classifier test closer, and the fit's gradient barely moves them
# (docs/experiments/fitting.md, "Parameters left out of the default fit").
EXTRA_FIT_PARAMS: tuple[FitParam, ...] = (
    FitParam("vessels.branch_ratio", 0.3, 0.95),
    FitParam("vessels.side_length_exponent", 0.0, 3.0),
    FitParam("vessels.root_vertical_bias", 0.0, 0.9),
    # The space-colonisation trees' continuous knobs (GrowthConfig.architecture = "colonisation"; the
    # tree-shape ones above act on the fixed "branching" layout only).
    FitParam("vessels.leaf_radius_um", 5.0, 12.0),
    FitParam("vessels.foveal_pull", 0.0, 1.0),
    FitParam("vessels.arcade_guidance", 0.0, 2.0),
    # their anatomical direction: the arcuate field's band and sink, the pull to the raphe, the demand by
    # eccentricity (no per-eye spread: the per-sample variability leaves the trees' settings alone)
    FitParam("vessels.arcade_onset_mm", 0.3, 2.5),
    FitParam("vessels.arcade_band_mm", 0.2, 3.0),
    FitParam("vessels.raphe_sink_mm", 1.0, 8.0),
    FitParam("vessels.raphe_pull", 0.0, 2.0),
    FitParam("vessels.demand_ecc_exponent", -1.0, 2.0),
)


def fit_param_by_path(paths: Sequence[str]) -> tuple[FitParam, ...]:
    known = {p.path: p for p in DEFAULT_FIT_PARAMS + EXTRA_FIT_PARAMS}
    if not paths:
        raise ValueError(f"fit_params names no parameter (null: the default set); fittable parameters: {sorted(known)}")
    unknown = [p for p in paths if p not in known]
    if unknown:
        raise ValueError(f"cannot fit {unknown}; fittable parameters: {sorted(known)}")
    return tuple(known[p] for p in paths)


# (group, parameter, sd of its log across eyes and acquisitions at scale 1).
SPREADS: tuple[tuple[str, str, float], ...] = (
    ("vessels", "faz_area_mm2", 0.5),
    ("vessels", "faz_irregularity", 0.4),
    ("vessels", "root_radius_um", 0.15),
    ("vessels", "capillary_radius_um", 0.15),
    ("vessels", "capillary_presence", 0.08),
    ("vessels", "deep_presence", 0.1),
    ("appearance", "capillary_signal", 0.25),
    ("appearance", "deep_signal", 0.3),
    ("appearance", "texture_strength", 0.4),
    ("appearance", "speckle", 0.3),
    ("appearance", "background", 0.4),
    ("appearance", "background_noise", 0.4),
    ("appearance", "psf_sigma_um", 0.25),
    ("appearance", "gain", 0.25),
    ("appearance", "gamma", 0.15),
    ("appearance", "falloff", 0.15),  # additive (see ADDITIVE): it is signed and may be 0
    ("appearance", "illumination_sd", 0.5),
    ("appearance", "parafovea_dim", 0.25),
    ("appearance", "foveal_background_dim", 1.0),  # complement (see COMPLEMENTS): a fraction near 1
    ("appearance", "parafovea_mm", 0.3),
    ("appearance", "line_artifact_rate", 0.8),
    ("appearance", "line_artifact_strength", 0.4),
    # Last: appending keeps every earlier parameter's draw (the normals are drawn by index).
    ("appearance", "oct_noise", 0.3),
)


# The valid range of every SimParams leaf, inclusive.
VALID: dict[str, tuple[float, float]] = {
    # vessels
    "vessels.faz_area_mm2": (0.01, 3.0),
    "vessels.faz_area_sd_mm2": (0.0, 1.0),
    "vessels.faz_irregularity": (0.0, 0.5),
    "vessels.faz_offset_sd_mm": (0.0, 1.0),
    "vessels.root_radius_um": (2.0, 60.0),
    "vessels.root_radius_sd_um": (0.0, 30.0),
    "vessels.murray_exponent": (2.0, 4.0),
    "vessels.branch_ratio": (0.2, 1.0),
    "vessels.branch_length_mm": (0.05, 5.0),
    "vessels.branch_length_decay": (0.1, MAX_BRANCH_DECAY),
    "vessels.side_length_exponent": (0.0, 5.0),
    "vessels.tortuosity_rad": (0.0, 2.0),
    "vessels.faz_clearance_mm": (0.0, 1.0),
    "vessels.fovea_attraction": (0.0, 0.1),
    "vessels.arcade_radius_um": (0.0, 100.0),
    "vessels.root_vertical_bias": (0.0, MAX_ROOT_VERTICAL_BIAS),
    "vessels.capillary_radius_um": (0.5, 6.0),  # GrowthConfig.max_capillary_radius_um (window sizing)
    "vessels.capillary_jitter": (0.0, MAX_CAPILLARY_JITTER),
    "vessels.capillary_wiggle": (0.0, MAX_CAPILLARY_WIGGLE),
    "vessels.capillary_presence": (0.0, 1.0),
    "vessels.foveal_displacement": (0.0, MAX_FOVEAL_DISPLACEMENT),
    "vessels.deep_presence": (0.0, 1.0),
    # space colonisation (GrowthConfig.architecture = "colonisation"); the step is clipped to the static
    # GrowthConfig.max_step_mm (window sizing), the radius to max_root_radius_um
    "vessels.growth_step_mm": (0.005, 0.5),
    "vessels.influence_mm": (0.01, 5.0),
    "vessels.kill_mm": (0.005, 2.0),
    "vessels.demand_clearance_mm": (0.0, 1.0),
    "vessels.leaf_radius_um": (1.0, 40.0),
    "vessels.arcade_guidance": (0.0, 10.0),
    "vessels.arcade_onset_mm": (0.0, 10.0),
    "vessels.arcade_band_mm": (0.0, 100.0),
    "vessels.raphe_sink_mm": (MIN_SINK_MM, 20.0),
    "vessels.demand_ecc_exponent": (MIN_DEMAND_EXPONENT, MAX_DEMAND_EXPONENT),
    "vessels.growth_inertia": (0.0, 10.0),
    "vessels.foveal_pull": (0.0, 10.0),
    "vessels.raphe_pull": (0.0, 10.0),
    "vessels.kind_owned_demand": (0.0, 1.0),
    "vessels.tree_radius_sd": (0.0, 2.0),
    "vessels.leaf_radius_sd": (0.0, 2.0),
    # appearance
    "appearance.vessel_signal": (0.0, 10.0),
    "appearance.capillary_signal": (0.0, 10.0),
    "appearance.deep_signal": (0.0, 10.0),
    "appearance.deep_blur_um": (0.0, MAX_DEEP_BLUR_UM),
    "appearance.texture_strength": (0.0, 1.0),
    "appearance.texture_scale_um": (1.0, MAX_TEXTURE_UM),
    "appearance.speckle": (0.0, 2.0),
    "appearance.oct_noise": (0.0, 2.0),
    "appearance.background": (0.0, 1.0),
    "appearance.background_noise": (0.0, 1.0),
    "appearance.psf_sigma_um": (0.5, MAX_PSF_UM),
    "appearance.psf_aspect": (0.25, 4.0),
    **{f"appearance.{name}": (-3.0, 3.0) for name in MTF_FIELDS},  # log amplitude gains
    "appearance.gain": (0.01, 20.0),
    "appearance.gamma": (0.1, 10.0),
    **{f"appearance.{name}": (-3.0, 3.0) for name in TONE_FIELDS},
    "appearance.white_point": (0.1, 10.0),
    "appearance.saturated_fraction": (0.0, 0.5),
    "appearance.detail_bright_gain": (0.0, 4.0),
    "appearance.detail_dark_gain": (0.0, 4.0),
    "appearance.falloff": (-2.0, 2.0),
    **{f"appearance.{name}": (-3.0, 3.0) for name in FIELD_GAIN_FIELDS},
    "appearance.parafovea_dim": (0.0, 1.0),
    "appearance.parafovea_mm": (0.001, 2.0),
    "appearance.foveal_background_dim": (0.0, 1.0),
    **{f"appearance.{name}": (-3.0, 3.0) for name in BORDER_GAIN_FIELDS + BORDER_FLOOR_FIELDS},
    "appearance.illumination_sd": (0.0, 2.0),
    "appearance.line_artifact_rate": (0.0, 1.0),
    "appearance.line_artifact_strength": (0.0, 1.0),
    # pathology
    "pathology.faz_enlargement": (0.0, 5.0),
    "pathology.dropout_extent": (0.0, 5.0),
    "pathology.dropout_depth": (0.0, 5.0),
    "pathology.dropout_softness_mm": (0.001, 0.5),
    "pathology.rarefaction_gain": (0.0, 5.0),
    "pathology.ma_radius_um": (2.0, 100.0),
    "pathology.ma_radius_sd": (0.0, 2.0),
    "pathology.ma_border_fraction": (0.0, 1.0),
    "pathology.nv_size_mm": (0.01, 0.5),
    "pathology.nv_radius_um": (0.5, 20.0),
    "pathology.irma_length_mm": (0.01, 2.0),
    "pathology.irma_radius_um": (0.5, 30.0),
    "pathology.tortuosity_gain": (0.0, 5.0),
    "pathology.beading_gain": (0.0, 5.0),
    "pathology.lesion_signal": (0.0, 10.0),
}


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    path: str  # "group.field" inside SimParams
    unit: str  # "um", "mm", "mm2", "rad" or "" (dimensionless: gains, fractions, log-gains)
    valid: tuple[float, float]  # what the renderer and the parameter's meaning allow (``check_params``)
    fit_bounds: tuple[float, float] | None  # the fit's valid range (None: never fitted)
    fitted_by_default: bool  # in DEFAULT_FIT_PARAMS (else only when named in fit_params)
    spread: float | None  # sd of its log (or of the value, additive ones) across eyes at variability 1


def unit_of(name: str) -> str:
    """The unit a field's name carries (``radius_um`` -> ``um``); ``_cpmm`` names the frequency of a
    dimensionless gain, and the radial-profile knots' ``_mm`` their distance, not the value's unit."""
    if name in BORDER_GAIN_FIELDS + BORDER_FLOOR_FIELDS:
        return ""
    for suffix in ("_mm2", "_um", "_mm", "_rad"):
        if name.endswith(suffix):
            return suffix[1:]
    return ""


def parameter_table() -> dict[str, ParamInfo]:
    """Every ``SimParams`` leaf: ``path -> ParamInfo``, in ``VALID`` order."""
    bounds = {p.path: p for p in DEFAULT_FIT_PARAMS + EXTRA_FIT_PARAMS}
    default = {p.path for p in DEFAULT_FIT_PARAMS}
    spreads = {f"{group}.{name}": sd for group, name, sd in SPREADS}
    table = {}
    for path, valid in VALID.items():
        fit = bounds.get(path)
        table[path] = ParamInfo(path=path, unit=unit_of(path.split(".")[1]), valid=valid,
                                fit_bounds=None if fit is None else (fit.lo, fit.hi), fitted_by_default=path in default,
                                spread=spreads.get(path))
    return table


UNIT_TEXT = {"um": "µm", "mm": "mm", "mm2": "mm²", "rad": "rad", "": ""}


def leaves(params: SimParams) -> dict[str, float]:
    """{"group.name": value} of every leaf."""
    return {f"{g.name}.{f.name}": getattr(getattr(params, g.name), f.name)
            for g in dataclasses.fields(params) for f in dataclasses.fields(getattr(params, g.name))}


def describe(path: str) -> str:
    lo, hi = VALID[path]
    unit = UNIT_TEXT[unit_of(path.split(".")[1])]
    return f"[{lo:g}, {hi:g}]" + (f" {unit}" if unit else "")


def check_params(params: SimParams) -> None:
    """ValueError naming the first leaf that is not a finite number inside its valid range."""
    for path, value in leaves(params).items():
        lo, hi = VALID[path]
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"params.{path}={value:g} is out of range: must be a finite number in {describe(path)}")
