"""``svr export``: image + reasoning pairs as Parquet shards, resumable, reproducible, verifiable.

    svr export n=100000 out=data/octa100k stage=mixed shard_size=1000
    svr export verify out=data/octa100k
    svr export -m n=100000 out=data/octa100k shards=0:25,25:50,50:75,75:100 hydra/launcher=joblib

Parses the ``export`` config into an ``ExportJob`` and runs ``svr_jax.export.pipeline``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional

from ..export.pipeline import ExportJob, export, verify
from ..jobs import GenerateJob
from ..presets import sim_and_params
from ..variability import DEFAULT_VARIABILITY
from .generate import parse_pathology, parse_variability
from .schema import FovSchema, ParamsOverride, StageSchema, TaskMixtureSchema, overrides_dict, require_at_least


@dataclasses.dataclass
class ExportSchema:
    action: str = "export"  # export | verify
    n: int = 256
    seed: int = 0
    out: str = "out/export"
    shard_size: int = 128
    shards: Optional[str] = None  # "a:b": produce only shards a..b-1 (for multirun workers)
    batch: int = 16
    size_px: Optional[int] = None
    fov_mm: Optional[float] = None
    architecture: Optional[str] = None  # vessel trees: branching | colonisation (opt-in, presets not fitted to it)
    masks: bool = True  # mask PNG columns in the shards
    variability: float = DEFAULT_VARIABILITY  # per-sample parameter spread around the preset; 0: none
    llamafactory: bool = True  # JSONL + image folder view with dataset_info.json
    card: bool = True  # dataset card (README.md + plots) when all shards are present
    browse: bool = False  # static browser site (browser/index.html, `svr browse`) when all shards are present
    tasks: Any = dataclasses.field(default_factory=TaskMixtureSchema)
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    stage: StageSchema = dataclasses.field(default_factory=StageSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = ExportSchema  # registered by the CLI as "export_schema" (conf/*.yaml defaults)


def _shard_range(text: str | None, count: int) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(x) for x in str(text).split(":"))
    except ValueError:
        raise ValueError(f"shards must look like 'a:b' (shard numbers), got {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"shards={text!r}: need 0 <= a < b")
    return a, min(b, count)


def parse(cfg) -> ExportJob:
    if cfg.action not in ("export", "verify"):
        raise ValueError(f"unknown export action {cfg.action!r}; valid: export, verify")
    out = Path(cfg.out)
    if cfg.action == "verify":
        if not (out / "manifest.json").is_file() and not list((out / "data").glob("*.parquet.json")):
            raise OSError(f"no export to verify: {str(out / 'manifest.json')!r} does not exist and there are no shard sidecars")
    require_at_least(cfg, 1, "n", "shard_size", "batch")
    weights = overrides_dict(cfg.tasks)
    for name, weight in weights.items():
        if not (math.isfinite(float(weight)) and float(weight) >= 0):
            raise ValueError(f"tasks.{name}={weight} is out of range: must be a finite weight >= 0 (0: not used)")
    tasks = tuple((k, float(v)) for k, v in weights.items() if float(v) > 0)
    if not tasks:
        raise ValueError("tasks: give at least one task a positive weight")
    sim, params = sim_and_params(cfg.fov.name, cfg.size_px, cfg.fov_mm, overrides_dict(cfg.fov.params), overrides_dict(cfg.params),
                                 architecture=cfg.architecture)
    from ..config import validate_batch
    from ..io import check_writable

    validate_batch(sim, int(min(cfg.batch, cfg.shard_size)))
    check_writable(out)
    count = math.ceil(cfg.n / cfg.shard_size)
    base = GenerateJob(
        sim=sim, params=params, fov_name=cfg.fov.name, n=int(cfg.n), first_index=0, seed=int(cfg.seed), out=out,
        batch=int(min(cfg.batch, cfg.shard_size)), contact_sheet=False, masks=bool(cfg.masks), pathology=parse_pathology(cfg),
        variability=parse_variability(cfg),
    )
    return ExportJob(
        action=cfg.action, base=base, shard_size=int(cfg.shard_size), shard_range=_shard_range(cfg.shards, count),
        tasks=tasks, masks=bool(cfg.masks), llamafactory=bool(cfg.llamafactory), card=bool(cfg.card),
        browse=bool(cfg.browse),
    )


def run(job: ExportJob) -> None:
    import sys

    if job.action == "verify":
        bad = verify(job.out)
        for line in bad:
            print(line)
        print(f"verify: {len(bad)} problem(s) in {job.out}")
        if bad:
            sys.exit(1)
        return
    manifest = export(job)
    print(f"export: {manifest['rows']} pairs in {len(manifest['shards'])}/{manifest['shards_expected']} shards at {job.out}"
          f" (rejected {manifest['rejected']}); stages {manifest['stages']}")
    if manifest["complete"] and job.browse:
        print(f"browse: {job.out / 'browser' / 'index.html'}")
