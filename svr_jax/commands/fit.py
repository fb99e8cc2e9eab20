"""``svr fit data=<folder> fov=3mm``: fit SimParams to real scans; write a report folder.

The report (``out``) holds ``params.yaml`` (the fitted values as a ``params:`` mapping), ``fit.json``
(values, statistic distances before/after, timings), ``loss_curve.png``, ``realism.png`` (real vs
fitted synthetic, side by side), ``synthetic.png`` (start vs fitted, no real image) and
``statistics.png`` (real / start / fitted statistics), plus
``checkpoints/`` (orbax) from which an interrupted fit resumes, and ``<fov>.yaml``: the preset the fit
started from with the fitted values written in. The fit never changes the installed presets; to adopt
the new one, copy it over the package's (``cp out/fit/3mm/3mm.yaml svr_jax/conf/fov/3mm.yaml``).

The fit reads the *fit half* of the committed split of the development eyes (``svr_jax.split``;
``split=fit``, the default), so that ``benchmarks/realism.py`` can measure on eyes it never saw;
``split=none`` reads every selected eye, on purpose, and the report says so. ``fit.json`` names the
eyes it read (``real_ids``) and the statistics it matched (``statistics``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, List, Optional

from ..fit import FIT_BATCH, FIT_LR, FIT_STEPS
from ..jobs import FitJob
from ..presets import sim_and_params
from ..stats import JOINT_SHRINKAGE
from ..variability import DEFAULT_VARIABILITY
from .schema import FovSchema, ParamsOverride, overrides_dict, require_at_least


@dataclasses.dataclass
class FitSchema:
    data: str = "???"
    split: str = "fit"
    disease: List[str] = dataclasses.field(default_factory=lambda: ["NORMAL"])
    per_class: bool = False
    limit: Optional[int] = None
    steps: int = FIT_STEPS
    batch: int = FIT_BATCH
    lr: float = FIT_LR
    seed: int = 0
    fit_params: Optional[List[str]] = None
    eval_n: int = 48
    out: str = "out/fit/${fov.name}"
    resume: bool = True
    checkpoint_every: int = 10
    from_defaults: bool = False
    joint: bool = True
    joint_weight: float = 1.0
    joint_shrinkage: float = JOINT_SHRINKAGE
    variability: float = DEFAULT_VARIABILITY
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = FitSchema  # registered by the CLI as "fit_schema" (conf/*.yaml defaults)


def parse(cfg) -> FitJob:
    from ..fit import DEFAULT_FIT_PARAMS, active_fit_params, fit_param_by_path
    from ..io import check_writable
    from ..realdata import list_images

    require_at_least(cfg, 1, "steps", "batch", "eval_n", "checkpoint_every")
    if not cfg.lr > 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if not cfg.joint_weight >= 0:
        raise ValueError(f"joint_weight must be >= 0, got {cfg.joint_weight}")
    if not 0 < cfg.joint_shrinkage <= 1:
        raise ValueError(f"joint_shrinkage must be in (0, 1], got {cfg.joint_shrinkage}")
    if not cfg.variability >= 0:
        raise ValueError(f"variability must be >= 0, got {cfg.variability}")
    data = Path(cfg.data)
    half = parse_split(cfg.split)
    fov_params = {} if cfg.from_defaults else overrides_dict(cfg.fov.params)
    sim, params = sim_and_params(cfg.fov.name, None, None, fov_params, overrides_dict(cfg.params))
    diseases = [str(d) for d in cfg.disease]
    rows = list_images(data, scan_mm=sim.field.fov_mm, disease=diseases, half=half)  # validates folder and filters early
    if cfg.per_class:
        classes = tuple((d,) for d in sorted({r["disease"] for r in rows}))
    else:
        classes = (tuple(diseases),)
    if cfg.fit_params is None:
        fit_params = active_fit_params(DEFAULT_FIT_PARAMS, sim)
    else:
        fit_params = fit_param_by_path([str(p) for p in cfg.fit_params])
    out = Path(cfg.out)
    check_writable(out)
    return FitJob(
        sim=sim, params=params, fov_name=cfg.fov.name, data=data, half=half, classes=classes,
        limit=None if cfg.limit is None else int(cfg.limit), steps=int(cfg.steps), batch=int(cfg.batch),
        lr=float(cfg.lr), seed=int(cfg.seed), fit_params=tuple(fit_params), eval_n=int(cfg.eval_n), out=out,
        resume=bool(cfg.resume), checkpoint_every=int(cfg.checkpoint_every),
        joint=bool(cfg.joint), joint_weight=float(cfg.joint_weight),
        joint_shrinkage=float(cfg.joint_shrinkage), variability=float(cfg.variability),
    )


def parse_split(value) -> Optional[str]:
    """``split=fit`` -> "fit"; ``split=none`` -> None (every eye). The held-out half is never fitted."""
    name = "none" if value is None else str(value).strip().lower()
    if name == "fit":
        return "fit"
    if name == "none":
        return None
    raise ValueError(f"split must be fit (the fit half of svr_jax/data/octa500_split.json) or none (every eye), got {value!r}; "
                     "the held-out half is for measuring realism, never for fitting")


def run(job: FitJob) -> None:
    from ..fit_report import run_one
    from ..runtime import enable_compilation_cache

    enable_compilation_cache()
    reports = []
    for diseases in job.classes:
        out = job.out / diseases[0].lower() if len(job.classes) > 1 else job.out
        reports.append(run_one(job, diseases, out))
    print(json.dumps({r["diseases"][0] if len(reports) > 1 else "fit": dict(distance_before=r["distance_before"]["total"],
                      distance_after=r["distance_after"]["total"], fit_seconds=r["fit_seconds"]) for r in reports}))
