"""``svr generate``: render samples to a folder (images, masks, per-sample JSON, contact sheet)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional

from .. import config as config_lib
from ..jobs import GenerateJob
from ..pathology import STAGES, PathologyConfig
from ..presets import sim_and_params
from ..variability import DEFAULT_VARIABILITY
from .schema import FovSchema, ParamsOverride, StageSchema, overrides_dict, require_at_least


@dataclasses.dataclass
class GenerateSchema:
    n: int = 64
    first_index: int = 0
    seed: int = 0
    out: str = "out/generate"
    batch: int = 32
    size_px: Optional[int] = None
    fov_mm: Optional[float] = None
    architecture: Optional[str] = None  # vessel trees: branching | colonisation (opt-in, presets not fitted to it)
    contact_sheet: bool = True
    masks: bool = True
    variability: float = DEFAULT_VARIABILITY  # per-sample parameter spread around the preset; 0: none
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    stage: StageSchema = dataclasses.field(default_factory=StageSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = GenerateSchema  # registered by the CLI as "generate_schema" (conf/*.yaml defaults)


def parse_variability(cfg) -> float:
    """The per-sample parameter spread (shared with ``svr export``)."""
    value = float(cfg.get("variability") or 0.0)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"variability must be >= 0 and finite (0: every sample uses the preset), got {value}")
    return value


def parse_pathology(cfg) -> PathologyConfig:
    """The static disease configuration from the ``stage`` group (shared with ``svr export``)."""
    stage = cfg.get("stage") or {}
    mixture = stage.get("mixture") or {}
    return PathologyConfig(
        stage=str(stage.get("name", "normal")),
        mixture=tuple(float(mixture.get(name, default)) for name, default in zip(STAGES, PathologyConfig().mixture)),
    )


def parse(cfg) -> GenerateJob:
    require_at_least(cfg, 1, "n", "batch")
    require_at_least(cfg, 0, "first_index")
    sim, params = sim_and_params(cfg.fov.name, cfg.size_px, cfg.fov_mm, overrides_dict(cfg.fov.params), overrides_dict(cfg.params),
                                 architecture=cfg.architecture)
    pathology = parse_pathology(cfg)
    out = Path(cfg.out)
    from ..io import check_writable

    config_lib.validate_batch(sim, int(cfg.batch))
    check_writable(out)
    return GenerateJob(
        sim=sim,
        params=params,
        fov_name=cfg.fov.name,
        n=int(cfg.n),
        first_index=int(cfg.first_index),
        seed=int(cfg.seed),
        out=out,
        # Not shrunk to n: XLA rounds the last float bit differently for another batch size (a rare pixel
        # moves one grey level), so sample i is byte-identical only between runs of the same batch.
        batch=int(cfg.batch),
        contact_sheet=bool(cfg.contact_sheet),
        masks=bool(cfg.masks),
        pathology=pathology,
        variability=parse_variability(cfg),
    )


def run(job: GenerateJob) -> None:
    from ..export.folder import write_folder

    write_folder(job)
