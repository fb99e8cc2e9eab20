"""The valid range of every ``SimParams`` leaf, and the check that runs before any simulation.

One table: ``VALID[path] = (lo, hi, unit)``, inclusive, for every leaf of ``SimParams``. A value
outside it (or NaN / inf) is refused with one line naming the parameter, its value and the range.
These are *validity* limits (what the renderer's static windows and the parameter's meaning allow),
wider than the *fit* ranges of ``svr_jax.fit.DEFAULT_FIT_PARAMS``, which are a prior for the
optimiser; ``tests/sim/test_export_integrity.py`` checks that every fit range and every preset
value lies inside this table.
"""

from __future__ import annotations

import dataclasses
import math

from .appearance import (BORDER_FLOOR_FIELDS, BORDER_GAIN_FIELDS, FIELD_GAIN_FIELDS, MAX_DEEP_BLUR_UM, MAX_PSF_UM,
                         MAX_TEXTURE_UM, MTF_FIELDS, TONE_FIELDS)
from .config import SimParams
from .growth import MAX_BRANCH_DECAY, MAX_CAPILLARY_JITTER, MAX_CAPILLARY_WIGGLE, MAX_FOVEAL_DISPLACEMENT, MAX_ROOT_VERTICAL_BIAS

UM, MM, MM2, RAD = "µm", "mm", "mm²", "rad"

VALID: dict[str, tuple[float, float, str]] = {
    # vessels
    "vessels.faz_area_mm2": (0.01, 3.0, MM2),
    "vessels.faz_area_sd_mm2": (0.0, 1.0, MM2),
    "vessels.faz_irregularity": (0.0, 0.5, ""),
    "vessels.faz_offset_sd_mm": (0.0, 1.0, MM),
    "vessels.root_radius_um": (2.0, 60.0, UM),
    "vessels.root_radius_sd_um": (0.0, 30.0, UM),
    "vessels.murray_exponent": (2.0, 4.0, ""),
    "vessels.branch_ratio": (0.2, 1.0, ""),
    "vessels.branch_length_mm": (0.05, 5.0, MM),
    "vessels.branch_length_decay": (0.1, MAX_BRANCH_DECAY, ""),
    "vessels.side_length_exponent": (0.0, 5.0, ""),
    "vessels.tortuosity_rad": (0.0, 2.0, RAD),
    "vessels.faz_clearance_mm": (0.0, 1.0, MM),
    "vessels.fovea_attraction": (0.0, 0.1, ""),
    "vessels.arcade_radius_um": (0.0, 100.0, UM),
    "vessels.root_vertical_bias": (0.0, MAX_ROOT_VERTICAL_BIAS, ""),
    "vessels.capillary_radius_um": (0.5, 6.0, UM),  # GrowthConfig.max_capillary_radius_um (window sizing)
    "vessels.capillary_jitter": (0.0, MAX_CAPILLARY_JITTER, ""),
    "vessels.capillary_wiggle": (0.0, MAX_CAPILLARY_WIGGLE, ""),
    "vessels.capillary_presence": (0.0, 1.0, ""),
    "vessels.foveal_displacement": (0.0, MAX_FOVEAL_DISPLACEMENT, ""),
    "vessels.deep_presence": (0.0, 1.0, ""),
    # appearance
    "appearance.vessel_signal": (0.0, 10.0, ""),
    "appearance.capillary_signal": (0.0, 10.0, ""),
    "appearance.deep_signal": (0.0, 10.0, ""),
    "appearance.deep_blur_um": (0.0, MAX_DEEP_BLUR_UM, UM),
    "appearance.texture_strength": (0.0, 1.0, ""),
    "appearance.texture_scale_um": (1.0, MAX_TEXTURE_UM, UM),
    "appearance.speckle": (0.0, 2.0, ""),
    "appearance.oct_noise": (0.0, 2.0, ""),
    "appearance.background": (0.0, 1.0, ""),
    "appearance.background_noise": (0.0, 1.0, ""),
    "appearance.psf_sigma_um": (0.5, MAX_PSF_UM, UM),
    "appearance.psf_aspect": (0.25, 4.0, ""),
    **{f"appearance.{name}": (-3.0, 3.0, "") for name in MTF_FIELDS},  # log amplitude gains
    "appearance.gain": (0.01, 20.0, ""),
    "appearance.gamma": (0.1, 10.0, ""),
    **{f"appearance.{name}": (-3.0, 3.0, "") for name in TONE_FIELDS},
    "appearance.white_point": (0.1, 10.0, ""),
    "appearance.saturated_fraction": (0.0, 0.5, ""),
    "appearance.detail_bright_gain": (0.0, 4.0, ""),
    "appearance.detail_dark_gain": (0.0, 4.0, ""),
    "appearance.falloff": (-2.0, 2.0, ""),
    **{f"appearance.{name}": (-3.0, 3.0, "") for name in FIELD_GAIN_FIELDS},
    "appearance.parafovea_dim": (0.0, 1.0, ""),
    "appearance.parafovea_mm": (0.001, 2.0, MM),
    "appearance.foveal_background_dim": (0.0, 1.0, ""),
    **{f"appearance.{name}": (-3.0, 3.0, "") for name in BORDER_GAIN_FIELDS + BORDER_FLOOR_FIELDS},
    "appearance.illumination_sd": (0.0, 2.0, ""),
    "appearance.line_artifact_rate": (0.0, 1.0, ""),
    "appearance.line_artifact_strength": (0.0, 1.0, ""),
    # pathology
    "pathology.faz_enlargement": (0.0, 5.0, ""),
    "pathology.dropout_extent": (0.0, 5.0, ""),
    "pathology.dropout_depth": (0.0, 5.0, ""),
    "pathology.dropout_softness_mm": (0.001, 0.5, MM),
    "pathology.rarefaction_gain": (0.0, 5.0, ""),
    "pathology.ma_radius_um": (2.0, 100.0, UM),
    "pathology.ma_radius_sd": (0.0, 2.0, ""),
    "pathology.ma_border_fraction": (0.0, 1.0, ""),
    "pathology.nv_size_mm": (0.01, 0.5, MM),
    "pathology.nv_radius_um": (0.5, 20.0, UM),
    "pathology.irma_length_mm": (0.01, 2.0, MM),
    "pathology.irma_radius_um": (0.5, 30.0, UM),
    "pathology.tortuosity_gain": (0.0, 5.0, ""),
    "pathology.beading_gain": (0.0, 5.0, ""),
    "pathology.lesion_signal": (0.0, 10.0, ""),
}


def leaves(params: SimParams) -> dict[str, float]:
    """{"group.name": value} of every leaf."""
    return {f"{g.name}.{f.name}": getattr(getattr(params, g.name), f.name)
            for g in dataclasses.fields(params) for f in dataclasses.fields(getattr(params, g.name))}


def describe(path: str) -> str:
    lo, hi, unit = VALID[path]
    return f"[{lo:g}, {hi:g}]" + (f" {unit}" if unit else "")


def check_params(params: SimParams) -> None:
    """ValueError naming the first leaf that is not a finite number inside its valid range."""
    for path, value in leaves(params).items():
        lo, hi, _ = VALID[path]
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"params.{path}={value:g} is out of range: must be a finite number in {describe(path)}")
