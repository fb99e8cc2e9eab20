"""Typed configuration: static structure (shapes) and differentiable parameters.

Two kinds of settings, kept apart on purpose:

* ``SimConfig`` is *static*: image size, field of view and every count that fixes an array shape
  (roots, generations, capillary grid). It is a frozen, hashable dataclass, passed to ``jax.jit`` as a
  static argument. Changing it recompiles.
* ``SimParams`` is a *pytree of floats*: every continuous knob of growth, perfusion and appearance. It
  is what ``jax.grad`` differentiates and what ``svr fit`` optimises. Values are in physical units
  (µm, mm, mm²) wherever a unit exists.

Hydra configs (``conf/``) are converted to these dataclasses at the CLI; library code never sees a
DictConfig.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import jax


@dataclass(frozen=True)
class FieldConfig:
    """The imaged field: square en-face projection centred near the fovea."""

    fov_mm: float = 3.0  # side length of the square field of view
    size_px: int = 304  # image height = width in pixels

    @property
    def pixel_um(self) -> float:
        return 1000.0 * self.fov_mm / self.size_px


@dataclass(frozen=True)
class GrowthConfig:
    """Counts and bounds that fix the vessel graph's capacity (static shapes)."""

    # "branching": fixed-layout binary trees of straight-ish branches (svr_jax.growth.grow_trees), what the
    # presets were fitted on; "colonisation": space-colonisation trees (svr_jax.colonisation), opt-in until
    # they are faster and refitted (docs/design/vessel-architecture.md).
    architecture: str = "branching"
    n_roots: int = 8  # arteriole/venule trees entering the field (interleaved A/V)
    disc_roots: int = 0  # of those, how many enter from the optic-disc (nasal) side
    generations: int = 6  # bifurcation generations per tree
    steps_per_branch: int = 5  # polyline segments per branch
    max_branch_length_mm: float = 0.9  # upper bound of generation-0 branch length (window sizing)
    max_root_radius_um: float = 40.0  # upper bound of root radius (window sizing)
    capillary_spacing_um: float = 38.0  # superficial mesh: square root of the area per node (honeycomb)
    capillary_subdivisions: int = 2  # segments per capillary edge (curved capillaries)
    deep_spacing_um: float = 50.0  # the same for the deeper plexus projected into the slab
    deep_subdivisions: int = 2
    max_capillary_radius_um: float = 6.0  # upper bound (window sizing)
    # Space colonisation (architecture="colonisation"): node capacity n_roots + steps * new_per_step.
    attractors: int = 500  # perfusion-demand points
    colonisation_steps: int = 48
    new_per_step: int = 24  # most nodes added in one step
    max_step_mm: float = 0.08  # upper bound of growth_step_mm (window sizing)
    min_twig_steps: int = 4  # side twigs shorter than this many steps are pruned


@dataclass(frozen=True)
class SimConfig:
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    growth: GrowthConfig = dataclasses.field(default_factory=GrowthConfig)
    antialias_px: float = 0.75  # half-width of the pixel anti-aliasing kernel of the splat
    deep_downsample: int = 2  # the deeper plexus is only seen blurred: render it on a coarser canvas
    # Static modes of the imaging model; each leaves the other mode's parameter without effect (not fitted).
    # noise: "speckle", a log-normal speckle on the signal (AppearanceParams.speckle), or "decorrelation",
    # the device's measurement drawn from decorrelation_looks depth samples per pixel (oct_noise;
    # svr_jax.decorrelation).
    noise: str = "speckle"
    decorrelation_looks: int = 8
    # white_point: "fixed", AppearanceParams.white_point maps to 255; or "percentile", the image's own, so that
    # its brightest saturated_fraction of pixels saturate (OCTA-500's exports stretch every scan so).
    white_point: str = "fixed"


def _pytree(cls):
    return jax.tree_util.register_dataclass(dataclass(frozen=True)(cls))


@_pytree
class VesselParams:
    """Distributions of the vascular structure (all differentiable)."""

    faz_area_mm2: float = 0.28  # mean FAZ area
    faz_area_sd_mm2: float = 0.05
    faz_irregularity: float = 0.10  # relative amplitude of the border's angular harmonics
    faz_offset_sd_mm: float = 0.08  # fovea position jitter around the field centre
    root_radius_um: float = 18.0  # mean radius of a vessel entering the field
    root_radius_sd_um: float = 6.0
    murray_exponent: float = 2.7  # r_parent^k = r_1^k + r_2^k
    branch_ratio: float = 0.75  # mean thinner/thicker child radius ratio at a bifurcation (spread +-0.25)
    branch_length_mm: float = 0.7  # generation-0 branch length
    branch_length_decay: float = 0.7  # per generation
    side_length_exponent: float = 0.0  # a side branch's length also scales by (its radius / the trunk's) ** this
    tortuosity_rad: float = 0.3  # heading random walk, radians per sqrt(mm)
    faz_clearance_mm: float = 0.12  # a 20 µm vessel ends this far from the FAZ border
    fovea_attraction: float = 0.008  # steering gain of thin branches towards the fovea
    arcade_radius_um: float = 25.0  # thicker vessels are steered away from the fovea (arc around it)
    # Where the edge roots enter: 0 = evenly all around; towards 1 they crowd at the top and bottom edges
    # (the macula's vessels branch off the superior and inferior arcades, few cross the temporal raphe).
    root_vertical_bias: float = 0.0
    capillary_radius_um: float = 3.5
    capillary_jitter: float = 0.3  # node jitter, fraction of spacing
    capillary_wiggle: float = 0.25  # mid-edge offset, fraction of edge length
    capillary_presence: float = 0.88  # expected fraction of mesh edges present
    # The foveal pit's centrifugal displacement of the capillary meshes, as a fraction f of the FAZ's
    # mean radius R: a node at distance r from the fovea moves out to sqrt(r^2 + (f R)^2) (area-preserving),
    # which stretches the mesh along circles around the fovea and squeezes it radially: parafoveal
    # capillaries run around the FAZ, not at random. 0 = none (at most growth.MAX_FOVEAL_DISPLACEMENT).
    foveal_displacement: float = 0.0
    deep_presence: float = 0.85
    # Space colonisation (GrowthConfig.architecture = "colonisation", svr_jax.colonisation). Library defaults;
    # the presets' fitted values are in default_params.
    growth_step_mm: float = 0.05  # length of one growth step (one segment)
    influence_mm: float = 0.8  # an attractor pulls its nearest node from at most this far
    kill_mm: float = 0.07  # an attractor is satisfied once a node comes this close
    demand_clearance_mm: float = 0.06  # no perfusion demand within this of the FAZ border
    leaf_radius_um: float = 7.8  # a terminal branch's radius; Murray's law gives the rest
    # The arcuate field (streamlines from the optic disc round the fovea to a sink on the temporal raphe):
    # its weight, within a band from arcade_onset_mm to arcade_onset_mm + arcade_band_mm from the fovea.
    arcade_guidance: float = 0.0
    arcade_onset_mm: float = 1.0
    arcade_band_mm: float = 100.0
    raphe_sink_mm: float = 4.0  # where the arcuate field's streamlines meet: this far temporal of the fovea
    growth_inertia: float = 0.3  # weight of a node's own heading in its child's direction
    foveal_pull: float = 0.3  # weight of the direction to the fovea (the parafovea's demand) in growth
    raphe_pull: float = 0.0  # temporal of the fovea: weight of the direction straight to the horizontal raphe
    # Perfusion demand by eccentricity: attractor density ~ (distance from the fovea / half side) ** this
    # (0: uniform; > 0 fewer large-vessel territories near the fovea, < 0 more).
    demand_ecc_exponent: float = 0.0
    kind_owned_demand: float = 0.0  # fraction of the attractors serving one kind only (A-V overlap and crossings)
    tree_radius_sd: float = 0.0  # log sd of a per-tree factor on the leaf radius
    leaf_radius_sd: float = 0.0  # log sd of a per-leaf factor on the leaf radius


@_pytree
class AppearanceParams:
    """The OCTA imaging model (all differentiable); later fitted to real scans."""

    vessel_signal: float = 1.0  # decorrelation signal of large vessels, per unit cross-section
    capillary_signal: float = 0.9  # of superficial capillaries
    deep_signal: float = 0.55  # of the deeper plexus projected into the slab
    deep_blur_um: float = 10.0  # extra blur of the out-of-focus deeper plexus
    texture_strength: float = 0.3  # capillary-scale multiplicative texture
    texture_scale_um: float = 25.0
    speckle: float = 0.45  # log-normal decorrelation speckle (std of log), with SimConfig.noise = "speckle"
    oct_noise: float = 0.1  # OCT noise amplitude over static tissue's, with SimConfig.noise = "decorrelation"
    background: float = 0.02  # additive background signal (the noise floor: a real FAZ is nearly black)
    background_noise: float = 0.03
    psf_sigma_um: float = 4.0  # lateral point-spread function
    psf_aspect: float = 1.0  # its sigma along the slow axis (rows) over that along the fast axis
    # System transfer function beyond the PSF: log amplitude gain at 1.5, 4, 8, 16, 32, 50 cycles/mm.
    mtf_1p5_cpmm: float = 0.0
    mtf_4_cpmm: float = 0.0
    mtf_8_cpmm: float = 0.0
    mtf_16_cpmm: float = 0.0
    mtf_32_cpmm: float = 0.0
    mtf_50_cpmm: float = 0.0
    gain: float = 1.1  # saturating contrast: 1 - exp(-gain * x)
    gamma: float = 1.0
    # Tone curve after gamma: log slope over each fifth of the grey range (0 = identity).
    tone_slope_1: float = 0.0
    tone_slope_2: float = 0.0
    tone_slope_3: float = 0.0
    tone_slope_4: float = 0.0
    tone_slope_5: float = 0.0
    # SimConfig.white_point = "fixed": the display value mapped to 255; brighter pixels clip (>= 1: none clip).
    white_point: float = 1.0
    # SimConfig.white_point = "percentile": the fraction of pixels that saturate (OCTA-500: about 1 %).
    saturated_fraction: float = 0.01
    # The export's pixel-scale detail filter: gains on the bright and the dark deviations of each pixel from
    # its 0.7 px neighbourhood (appearance.DETAIL_SIGMA_PX), 1 = none; unequal gains reshape the finest
    # texture (peaks vs pits) without changing its power much.
    detail_bright_gain: float = 1.0
    detail_dark_gain: float = 1.0
    falloff: float = 0.0  # signal fall-off towards the field edge
    # Its fitted residual: log gain at 0.5, 0.75, 1 and 1.42 half-sides from the field centre (0 at the centre).
    field_gain_0p5: float = 0.0
    field_gain_0p75: float = 0.0
    field_gain_1: float = 0.0
    field_gain_1p42: float = 0.0
    parafovea_dim: float = 0.5  # fraction of the projected signal missing at the FAZ border (thin retina)
    parafovea_mm: float = 0.2  # distance outside the border over which it recovers (e-folding)
    foveal_background_dim: float = 0.0  # fraction of the noise floor missing there too (less tissue in the slab)
    # Radial profiles around the FAZ, fitted: log gain of the projected signal and of the noise floor at
    # knots 0.15 mm inside the border, on it, and 0.1 to 0.8 mm outside (1.2 mm and beyond: 0).
    border_gain_in0p15_mm: float = 0.0
    border_gain_0_mm: float = 0.0
    border_gain_0p1_mm: float = 0.0
    border_gain_0p2_mm: float = 0.0
    border_gain_0p4_mm: float = 0.0
    border_gain_0p8_mm: float = 0.0
    border_floor_in0p15_mm: float = 0.0
    border_floor_0_mm: float = 0.0
    border_floor_0p1_mm: float = 0.0
    border_floor_0p2_mm: float = 0.0
    border_floor_0p4_mm: float = 0.0
    border_floor_0p8_mm: float = 0.0
    illumination_sd: float = 0.1  # sd of the log of the slowly varying illumination gain across the field
    line_artifact_rate: float = 0.01  # fraction of B-scan rows with motion artifacts
    line_artifact_strength: float = 0.2


@_pytree
class PathologyParams:
    """Continuous knobs of the diabetic-retinopathy operators (all differentiable).

    They scale the per-stage lesion distributions of ``svr_jax.pathology.staging.STAGE_TABLE``; a
    normal eye is unaffected by any of them.
    """

    faz_enlargement: float = 1.0  # gain on the stage's FAZ area / irregularity increase
    dropout_extent: float = 1.0  # scales the radii of non-perfusion regions
    dropout_depth: float = 1.0  # scales their completeness (clipped to 1)
    dropout_softness_mm: float = 0.02  # width of the perfused-to-non-perfused transition
    rarefaction_gain: float = 1.0  # gain on the stage's diffuse capillary loss
    ma_radius_um: float = 22.0  # median microaneurysm radius (diameters 25-130 µm)
    ma_radius_sd: float = 0.35  # log-normal spread of it
    ma_border_fraction: float = 0.75  # fraction of microaneurysms at non-perfusion borders (when any)
    nv_size_mm: float = 0.09  # radius of a neovascular tuft
    nv_radius_um: float = 4.0  # its fine vessels
    irma_length_mm: float = 0.3  # length of an IRMA shunt vessel
    irma_radius_um: float = 8.0  # dilated, vs ~3.5 µm capillaries
    tortuosity_gain: float = 1.0  # gain on the stage's arteriole/venule tortuosity
    beading_gain: float = 1.0  # gain on the stage's venous beading
    lesion_signal: float = 0.9  # decorrelation signal of lesion vessels, per unit cross-section


@_pytree
class SimParams:
    vessels: VesselParams = dataclasses.field(default_factory=VesselParams)
    appearance: AppearanceParams = dataclasses.field(default_factory=AppearanceParams)
    pathology: PathologyParams = dataclasses.field(default_factory=PathologyParams)


def as_float32(params: SimParams) -> SimParams:
    """``params`` with every value a float32 array. Presets hold Python floats (weakly typed under jit),
    draws and fits hold arrays: a compiled program called with both would compile twice."""
    return jax.tree.map(lambda value: jax.numpy.asarray(value, "float32"), params)


# Presets mirror OCTA-500's two scan sizes.
PRESETS: dict[str, SimConfig] = {
    "3mm": SimConfig(field=FieldConfig(fov_mm=3.0, size_px=304), growth=GrowthConfig(), noise="decorrelation",
                     white_point="percentile"),
    "6mm": SimConfig(
        white_point="percentile",
        field=FieldConfig(fov_mm=6.0, size_px=400),
        growth=GrowthConfig(
            n_roots=10,
            disc_roots=6,
            generations=6,
            max_branch_length_mm=2.0,
            max_root_radius_um=45.0,
            capillary_spacing_um=52.0,
            capillary_subdivisions=2,
            deep_spacing_um=75.0,
            deep_subdivisions=2,
            attractors=1000,
            colonisation_steps=64,
            new_per_step=32,
            max_step_mm=0.12,
        ),
    ),
}
# The 3 mm field with a log-normal speckle on the signal in place of the drawn decorrelation: 1.6x faster to
# generate, further from real scans in the classifier test (docs/results.md).
PRESETS["3mm_lognormal"] = dataclasses.replace(PRESETS["3mm"], noise="speckle")


def preset(name: str) -> SimConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown field-of-view preset {name!r}; valid: {sorted(PRESETS)}") from None


def default_params(cfg: SimConfig) -> SimParams:
    """Defaults scaled to the field: the 6 mm field enters with larger vessels and longer branches; each
    field's colonisation-tree values are its own fit."""
    if cfg.field.fov_mm >= 4.5:
        return SimParams(
            # Long, thick arcade vessels that arc around the fovea; thin branches drawn towards it.
            vessels=VesselParams(root_radius_um=34.0, branch_length_mm=1.7, branch_length_decay=0.65, faz_area_mm2=0.30,
                                 fovea_attraction=0.012, arcade_radius_um=18.0, tortuosity_rad=0.25,
                                 # The colonisation trees' values: fitted on the fit half (benchmarks/fit_trees.py).
                                 growth_step_mm=0.0802, influence_mm=0.5, kill_mm=0.208, demand_clearance_mm=0.0086,
                                 leaf_radius_um=15.8821, arcade_guidance=1.9965, arcade_onset_mm=1.4976, arcade_band_mm=1.3374,
                                 raphe_sink_mm=1.816, raphe_pull=0.6203, demand_ecc_exponent=0.2579, growth_inertia=0.6921,
                                 foveal_pull=0.0, kind_owned_demand=0.5959, tree_radius_sd=0.1975, leaf_radius_sd=0.0553),
            appearance=AppearanceParams(psf_sigma_um=8.0, capillary_signal=1.5),
            pathology=PathologyParams(lesion_signal=1.5),
        )
    # The colonisation trees' values: fitted on the fit half (benchmarks/fit_trees.py).
    return SimParams(vessels=VesselParams(growth_step_mm=0.0337, influence_mm=0.604, kill_mm=0.117, demand_clearance_mm=0.0125,
                                          leaf_radius_um=9.1303, arcade_guidance=1.1897, arcade_onset_mm=1.0739,
                                          arcade_band_mm=2.0, raphe_sink_mm=3.2584, raphe_pull=0.7823,
                                          demand_ecc_exponent=0.4314, growth_inertia=0.7287, foveal_pull=0.2796,
                                          kind_owned_demand=0.1206, tree_radius_sd=0.1897, leaf_radius_sd=0.1099))


def _replace_nested(obj: Any, values: Mapping[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    updates = {}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown setting {where}{key!r}; valid: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}{key} must be a mapping, got {value!r}")
            updates[key] = _replace_nested(current, value, f"{where}{key}.")
        else:
            updates[key] = type(current)(value) if isinstance(current, (int, float, str, bool)) else value
    return dataclasses.replace(obj, **updates)


def params_from_dict(base: SimParams, values: Mapping[str, Any] | None) -> SimParams:
    """Overlay a (nested) mapping of plain values, e.g. from YAML, onto ``base``."""
    return base if not values else _replace_nested(base, values, "params.")


def params_to_dict(params: SimParams) -> dict[str, dict[str, float]]:
    return {
        group.name: {f.name: float(getattr(getattr(params, group.name), f.name)) for f in dataclasses.fields(getattr(params, group.name))}
        for group in dataclasses.fields(params)
    }


# Memory guards: every renderer buffer is [batch, size_px, size_px] (several dozen of them live at once),
# so a typo such as size_px=100000 would ask for tens of GiB before the first sample. The limits keep
# one compiled batch to a few GiB of device memory.
MAX_SIZE_PX = 2048
MAX_BATCH_PIXELS = 1 << 24  # batch x size_px^2, e.g. batch 16 at 1024 px


NOISE_MODES = ("speckle", "decorrelation")
WHITE_POINT_MODES = ("fixed", "percentile")


def validate(cfg: SimConfig) -> None:
    """Reject impossible static settings with a message that names the value."""
    f, g = cfg.field, cfg.growth
    if not (f.fov_mm > 0 and math.isfinite(f.fov_mm)):
        raise ValueError(f"fov_mm must be a finite number > 0, got {f.fov_mm}")
    if not 16 <= f.size_px <= MAX_SIZE_PX:
        raise ValueError(f"size_px must be in [16, {MAX_SIZE_PX}] (memory limit), got {f.size_px}")
    for name in ("n_roots", "generations", "steps_per_branch", "capillary_subdivisions", "deep_subdivisions"):
        if getattr(g, name) < 1:
            raise ValueError(f"growth.{name} must be >= 1, got {getattr(g, name)}")
    if cfg.noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {cfg.noise!r}")
    if cfg.noise == "decorrelation" and cfg.decorrelation_looks < 1:
        raise ValueError(f"decorrelation_looks must be >= 1 with noise='decorrelation', got {cfg.decorrelation_looks}")
    if cfg.white_point not in WHITE_POINT_MODES:
        raise ValueError(f"white_point must be one of {WHITE_POINT_MODES}, got {cfg.white_point!r}")
    if g.architecture not in ("colonisation", "branching"):
        raise ValueError(f"growth.architecture must be 'colonisation' or 'branching', got {g.architecture!r}")
    if not 0 <= g.disc_roots <= g.n_roots:
        raise ValueError(f"growth.disc_roots must be in [0, n_roots={g.n_roots}], got {g.disc_roots}")
    for name in ("capillary_spacing_um", "deep_spacing_um", "max_branch_length_mm", "max_root_radius_um"):
        if getattr(g, name) <= 0:
            raise ValueError(f"growth.{name} must be > 0, got {getattr(g, name)}")


def validate_batch(cfg: SimConfig, batch: int) -> None:
    """Reject a batch whose images would not fit the memory guard ``MAX_BATCH_PIXELS``."""
    pixels = batch * cfg.field.size_px**2
    if pixels > MAX_BATCH_PIXELS:
        largest = max(1, MAX_BATCH_PIXELS // cfg.field.size_px**2)
        raise ValueError(f"batch x size_px^2 = {batch} x {cfg.field.size_px}^2 = {pixels} pixels exceeds the memory limit "
                         f"{MAX_BATCH_PIXELS}; use batch <= {largest} at size_px={cfg.field.size_px}")
