"""Diabetic-retinopathy stages and the lesion distributions each stage implies.

The stage is a *traced* int32 per sample (0 normal, 1 mild NPDR, 2 moderate NPDR, 3 severe NPDR, 4 PDR),
so that a batch mixing stages is one compiled program: every operator runs for every sample, with
counts and strengths looked up in ``STAGE_TABLE`` by the stage and set to zero where the stage says so.

The table follows the clinical (ETDRS / international) grading logic:

* mild NPDR: microaneurysms only;
* moderate NPDR: more microaneurysms and some, partial, capillary non-perfusion;
* severe NPDR: extensive, complete non-perfusion, intraretinal microvascular abnormalities (IRMA) and
  venous beading;
* PDR: all of that plus neovascularization.

Tortuosity, FAZ enlargement, the pruning of the FAZ border's capillaries and a diffuse, patchy capillary loss (rarefaction, which OCTA shows from mild
NPDR on; not a lesion, so it does not change the grade) grow with the stage. A normal eye gets none of it
(all zeros, scale 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..stages import STAGES

STAGE_CHOICES = STAGES + ("mixed",)
NORMAL, MILD, MODERATE, SEVERE, PDR = range(5)
DEFAULT_MIXTURE = (0.4, 0.15, 0.15, 0.15, 0.15)

# Per-stage lesion distributions, one column per stage (normal, mild, moderate, severe, pdr).
# Counts are uniform integers in [lo, hi]; ranges are uniform floats; radii in mm at any field size.
STAGE_TABLE: dict[str, tuple[float, ...]] = dict(
    ma_count_lo=(0, 1, 4, 8, 8),
    ma_count_hi=(0, 6, 14, 24, 28),
    dropout_count_lo=(0, 0, 1, 3, 3),
    dropout_count_hi=(0, 0, 2, 6, 6),
    dropout_depth_lo=(0, 0, 0.5, 0.85, 0.9),  # completeness: 1 = every capillary inside is lost
    dropout_depth_hi=(0, 0, 0.85, 1.0, 1.0),
    dropout_radius_lo_mm=(0.2, 0.2, 0.12, 0.18, 0.2),
    dropout_radius_hi_mm=(0.4, 0.4, 0.25, 0.38, 0.42),
    # Diffuse capillary loss (mean fraction of capillaries), patchy, besides the focal regions: OCTA
    # vessel density falls from mild NPDR on (see _dropout.py for the sources).
    capillary_loss=(0, 0.1, 0.15, 0.12, 0.15),
    irma_count_lo=(0, 0, 0, 1, 0),
    irma_count_hi=(0, 0, 0, 3, 3),
    nv_count_lo=(0, 0, 0, 0, 1),
    nv_count_hi=(0, 0, 0, 0, 4),
    tortuosity=(0, 0.03, 0.05, 0.08, 0.1),  # lateral amplitude, fraction of a branch's chord
    beading=(0, 0, 0, 0.35, 0.35),  # relative radius modulation of venules
    faz_area_scale=(1, 1.1, 1.3, 1.6, 1.8),
    faz_irregularity_scale=(1, 1.2, 1.5, 1.9, 2.1),
    # Greatest width of the FAZ border's pruned fringe (lost border capillaries), mm.
    faz_fringe_mm=(0, 0.02, 0.035, 0.05, 0.06),
)


@dataclass(frozen=True)
class PathologyConfig:
    """Static disease setting: a fixed stage, or ``"mixed"`` to draw it per sample from ``mixture``.

    ``stage="normal"`` skips the disease stage entirely at trace time (the healthy pipeline, unchanged).
    """

    stage: str = "normal"
    mixture: tuple[float, ...] = DEFAULT_MIXTURE  # probabilities of STAGES for "mixed"

    def __post_init__(self):
        if self.stage not in STAGE_CHOICES:
            raise ValueError(f"unknown stage {self.stage!r}; valid: {list(STAGE_CHOICES)}")
        mixture = tuple(float(w) for w in self.mixture)
        if len(mixture) != len(STAGES) or not all(0 <= w < float("inf") for w in mixture) or sum(mixture) <= 0:
            raise ValueError(f"stage mixture must be {len(STAGES)} non-negative weights with a positive sum, got {self.mixture!r}")
        object.__setattr__(self, "mixture", mixture)

    @property
    def active(self) -> bool:
        return self.stage != "normal"


def as_config(stage: "str | PathologyConfig | None") -> PathologyConfig:
    if stage is None:
        return PathologyConfig()
    if isinstance(stage, PathologyConfig):
        return stage
    return PathologyConfig(stage=str(stage))


def stage_weights(pcfg: PathologyConfig) -> np.ndarray:
    """[len(STAGES)] float32 stage weights of a setting: the mixture, or one-hot on a fixed stage. As an
    argument of ``simulate`` (``draw_weighted_stage``) one compiled program serves every setting."""
    if pcfg.stage == "mixed":
        return np.asarray(pcfg.mixture, np.float32)
    return np.eye(len(STAGES), dtype=np.float32)[STAGES.index(pcfg.stage)]


def draw_weighted_stage(key: jax.Array, weights: jax.Array) -> jax.Array:
    """[] int32 stage drawn with probabilities ``weights`` (normalised). A one-hot stage always wins:
    its log-odds margin (69) exceeds any two float32 Gumbel draws' difference (< 22)."""
    weights = jnp.asarray(weights, jnp.float32)
    return jax.random.categorical(key, jnp.log(weights / jnp.sum(weights) + 1e-30)).astype(jnp.int32)


def draw_stage(key: jax.Array, pcfg: PathologyConfig) -> jax.Array:
    """[] int32 stage of one sample: fixed, or drawn from the mixture."""
    if pcfg.stage != "mixed":
        return jnp.int32(STAGES.index(pcfg.stage))
    return draw_weighted_stage(key, stage_weights(pcfg))


def stage_profile(stage: jax.Array) -> dict:
    """name -> [] value of ``STAGE_TABLE`` at ``stage`` (a traced int)."""
    return {name: jnp.asarray(np.asarray(column, np.float32))[stage] for name, column in STAGE_TABLE.items()}


def draw_count(key: jax.Array, profile: dict, name: str, capacity: int) -> jax.Array:
    """[capacity] bool: the first n slots are active, n uniform in the stage's [lo, hi] (clipped)."""
    lo, hi = profile[f"{name}_count_lo"], profile[f"{name}_count_hi"]
    n = jnp.floor(lo + (hi - lo + 1.0) * jax.random.uniform(key))
    n = jnp.clip(jnp.minimum(n, hi), 0, capacity)
    return jnp.arange(capacity) < n


def draw_range(key: jax.Array, lo, hi, shape=()) -> jax.Array:
    return lo + (hi - lo) * jax.random.uniform(key, shape)
