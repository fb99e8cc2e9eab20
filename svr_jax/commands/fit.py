"""``svr fit data=<folder> fov=3mm``: fit SimParams to real scans; write a report folder.

The report (``out``) holds ``params.yaml`` (the fitted values as a ``params:`` mapping), ``fit.json``
(values, statistic distances before/after, timings), ``loss_curve.png``, ``realism.png`` (real vs
fitted synthetic, side by side), ``synthetic.png`` (start vs fitted, no real image) and
``statistics.png`` (real / start / fitted statistics), plus
``checkpoints/`` (orbax) from which an interrupted fit resumes. ``write_preset=true`` stores the fitted
values in ``conf/fov/<fov>.yaml``, the defaults of ``svr generate``.

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

import numpy as np

from .. import config as config_lib
from .generate import FovSchema, sim_and_params
from .schema import ParamsOverride, overrides_dict, require_at_least


@dataclasses.dataclass
class FitSchema:
    data: str = "???"
    split: str = "fit"
    disease: List[str] = dataclasses.field(default_factory=lambda: ["NORMAL"])
    per_class: bool = False
    limit: Optional[int] = None
    steps: int = 150
    batch: int = 16
    lr: float = 0.05
    seed: int = 0
    fit_params: Optional[List[str]] = None
    eval_n: int = 48
    out: str = "out/fit"
    resume: bool = True
    checkpoint_every: int = 10
    write_preset: bool = False
    from_defaults: bool = False
    joint: bool = True
    joint_weight: float = 1.0
    joint_shrinkage: float = 0.01  # stats.JOINT_SHRINKAGE
    variability: float = 0.3
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = FitSchema  # registered by the CLI as "fit_schema" (conf/*.yaml defaults)


@dataclasses.dataclass(frozen=True)
class FitJob:
    sim: config_lib.SimConfig
    params: config_lib.SimParams  # the start point
    fov_name: str
    data: Path
    half: Optional[str]  # the half of the split read ("fit"), or None: every eye (split=none)
    classes: tuple  # tuple of disease selections (one fit each)
    limit: Optional[int]
    steps: int
    batch: int
    lr: float
    seed: int
    fit_params: tuple
    eval_n: int
    out: Path
    resume: bool
    checkpoint_every: int
    write_preset: bool
    joint: bool  # add the covariance-aware (whitened) distance of the feature vector to the loss
    joint_weight: float  # ... counted as this many statistic groups
    joint_shrinkage: float  # ... with the real correlation shrunk this far towards its diagonal
    variability: float  # per-sample parameter spread of the synthetic images (fit and evaluation)


def parse(cfg) -> FitJob:
    from ..fit import DEFAULT_FIT_PARAMS, fit_param_by_path
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
        if cfg.write_preset:
            raise ValueError("write_preset=true needs a single fit; drop per_class=true")
    else:
        classes = (tuple(diseases),)
    fit_params = DEFAULT_FIT_PARAMS if cfg.fit_params is None else fit_param_by_path([str(p) for p in cfg.fit_params])
    out = Path(cfg.out)
    check_writable(out)
    return FitJob(
        sim=sim, params=params, fov_name=cfg.fov.name, data=data, half=half, classes=classes,
        limit=None if cfg.limit is None else int(cfg.limit), steps=int(cfg.steps), batch=int(cfg.batch),
        lr=float(cfg.lr), seed=int(cfg.seed), fit_params=tuple(fit_params), eval_n=int(cfg.eval_n), out=out,
        resume=bool(cfg.resume), checkpoint_every=int(cfg.checkpoint_every), write_preset=bool(cfg.write_preset),
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


def split_label(half: Optional[str], ids) -> str:
    """What the report says about the split: "fit", "none" (every eye, asked for), or "not applicable"
    (a folder of other eyes than the split's, all read)."""
    from ..split import committed_split

    if half is None:
        return "none"
    split = committed_split()
    return half if any(split.half_of(i) for i in ids) else "not applicable"


def params_mapping(values: dict[str, float]) -> dict:
    """{"appearance.gain": 1.3, ...} -> {"appearance": {"gain": 1.3}, ...} (4 significant digits)."""
    nested: dict = {}
    for path, value in values.items():
        group, name = path.split(".")
        nested.setdefault(group, {})[name] = float(f"{value:.4g}")
    return nested


def write_preset(fov_name: str, values: dict[str, float]) -> Path:
    """Replace the ``params:`` mapping of ``conf/fov/<fov>.yaml``, keeping its comment header."""
    from omegaconf import OmegaConf

    from ..cli import conf_dir

    path = conf_dir() / "fov" / f"{fov_name}.yaml"
    header = [line for line in path.read_text().splitlines() if line.startswith("#")] if path.exists() else []
    existing = OmegaConf.load(path) if path.exists() else OmegaConf.create({})
    merged = OmegaConf.merge(OmegaConf.create(dict(params=existing.get("params") or {})), dict(params=params_mapping(values)))
    body = OmegaConf.to_yaml(OmegaConf.create(dict(name=fov_name, params=OmegaConf.to_container(merged.params))))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(header + [body.rstrip()]) + "\n")
    tmp.replace(path)
    return path


def evaluate(job: FitJob, real_summary: dict, params: config_lib.SimParams, seed: int) -> tuple[dict, dict]:
    """Per-group distances of ``eval_n`` fresh synthetic images, and their statistics."""
    import jax.numpy as jnp

    from .. import stats as stats_lib
    from ..fit import real_summary as summarize_images
    from ..fit import simulate_images

    images = simulate_images(params, job.sim, n=job.eval_n, seed=seed, variability=job.variability)
    per_image, _ = summarize_images(images, job.sim)
    distances = stats_lib.moment_distance({g: jnp.asarray(v) for g, v in per_image.items()}, real_summary)
    out = {g: float(v) for g, v in distances.items()}
    out["total"] = float(stats_lib.group_total(distances))
    return out, dict(images=images, stats=per_image)


def plot_report(out: Path, result, real_images, real_stats, before, after, sim) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import stats as stats_lib

    # Loss curve.
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.losses, label="total", color="k")
    for g, v in result.group_losses.items():
        ax.plot(v, label=g, lw=0.8, alpha=0.8)
    ax.set_yscale("log"), ax.set_xlabel("step"), ax.set_ylabel("moment distance"), ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(out / "loss_curve.png", dpi=100), plt.close(fig)

    # Real vs fitted synthetic.
    n = min(4, len(real_images), len(after["images"]))
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4))
    axes = np.asarray(axes).reshape(2, n)
    for i in range(n):
        for row, (img, label) in enumerate(((real_images[i], "real"), (after["images"][i], "fitted synthetic"))):
            axes[row, i].imshow(img, cmap="gray", vmin=0, vmax=1), axes[row, i].set_axis_off()
            axes[row, i].set_title(label, fontsize=9)
    fig.tight_layout(), fig.savefig(out / "realism.png", dpi=110), plt.close(fig)

    # Start vs fitted synthetic (no real image: shareable where the real data may not be redistributed).
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4))
    axes = np.asarray(axes).reshape(2, n)
    for i in range(n):
        for row, (img, label) in enumerate(((before["images"][i], "start"), (after["images"][i], "fitted"))):
            axes[row, i].imshow(img, cmap="gray", vmin=0, vmax=1), axes[row, i].set_axis_off()
            axes[row, i].set_title(label, fontsize=9)
    fig.tight_layout(), fig.savefig(out / "synthetic.png", dpi=110), plt.close(fig)

    # Statistics: histogram, spectrum, and z-scores of the other groups.
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    centres = (np.arange(stats_lib.HIST_BINS) + 0.5) / stats_lib.HIST_BINS
    bands = stats_lib.spectrum_band_centres(sim.field.size_px, sim.field.pixel_um)
    for label, st, style in (("real", real_stats, "k-"), ("start", before["stats"], "r--"), ("fitted", after["stats"], "b-")):
        axes[0].plot(centres, st["histogram"].mean(0), style, label=label)
        axes[1].plot(bands, st["spectrum"].mean(0), style, label=label)
    axes[0].set_title("intensity histogram"), axes[0].legend()
    axes[1].set_xscale("log"), axes[1].set_title("radial power spectrum (log10)"), axes[1].set_xlabel("cycles/mm")
    names, z_before, z_after = [], [], []
    for g in ("quantiles", "local_std", "oriented", "vessel", "faz"):
        mu = real_stats[g].mean(0)
        sd = np.asarray(stats_lib.spread_scale(dict(mean=mu, sd=real_stats[g].std(0))))
        for k in range(mu.shape[0]):
            names.append(f"{g}[{k}]")
            z_before.append((before["stats"][g][:, k].mean() - mu[k]) / sd[k])
            z_after.append((after["stats"][g][:, k].mean() - mu[k]) / sd[k])
    x = np.arange(len(names))
    axes[2].bar(x - 0.2, z_before, 0.4, color="r", label="start"), axes[2].bar(x + 0.2, z_after, 0.4, color="b", label="fitted")
    axes[2].axhline(0, color="k", lw=0.5), axes[2].set_xticks(x, names, rotation=90, fontsize=6)
    axes[2].set_title("mean - real mean (real sd units)"), axes[2].legend()
    fig.tight_layout(), fig.savefig(out / "statistics.png", dpi=100), plt.close(fig)


def fit_statistics(job: FitJob) -> dict[str, list[str]]:
    """What the fit matches: every statistic group of ``svr_jax.stats`` by entry name, and with the joint
    term, the feature vector whose whitened mean it also matches (``svr_jax.stats.feature_names``)."""
    from .. import stats as stats_lib

    field = job.sim.field
    names = stats_lib.statistic_names(field.size_px, field.pixel_um)
    if job.joint:
        names["joint"] = stats_lib.feature_names(field.size_px, field.pixel_um)
    return names


def run_one(job: FitJob, diseases: tuple, out: Path) -> dict:
    from omegaconf import OmegaConf

    from ..fit import fit, real_summary
    from ..io import write_json
    from ..realdata import load_folder

    out.mkdir(parents=True, exist_ok=True)
    real = load_folder(job.data, scan_mm=job.sim.field.fov_mm, disease=list(diseases), size_px=job.sim.field.size_px,
                       limit=job.limit, half=job.half)
    split = split_label(job.half, real.ids)
    print(f"fit: {len(real)} real {'/'.join(diseases)} images from {job.data} ({job.fov_name}; split: {split})")
    real_stats, summary = real_summary(real.images, job.sim, joint=job.joint, joint_shrinkage=job.joint_shrinkage)
    checkpoints = out / "checkpoints"
    if not job.resume and checkpoints.exists():
        import shutil

        shutil.rmtree(checkpoints)
    result = fit(job.sim, job.params, summary, steps=job.steps, batch=job.batch, lr=job.lr, seed=job.seed,
                 fit_params=job.fit_params, checkpoint_dir=checkpoints, checkpoint_every=job.checkpoint_every,
                 joint_weight=job.joint_weight, variability=job.variability)
    eval_seed = job.seed + 1_000_003  # never the fit's keys
    before, before_data = evaluate(job, summary, job.params, eval_seed)
    after, after_data = evaluate(job, summary, result.params, eval_seed)
    (out / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dict(params=params_mapping(result.values)))))
    report = dict(
        fov=job.fov_name, data=str(job.data), split=split, real_ids=list(real.ids),
        statistics=fit_statistics(job), diseases=list(diseases), n_real=len(real), steps=job.steps, batch=job.batch,
        lr=job.lr, seed=job.seed, joint_weight=job.joint_weight, joint_shrinkage=job.joint_shrinkage, variability=job.variability,
        values=result.values, distance_before=before, distance_after=after,
        distance_reduction=1.0 - after["total"] / max(before["total"], 1e-12), fit_seconds=result.seconds,
        step_seconds=result.step_seconds, resumed_from=result.resumed_from, final_loss=float(result.losses[-1]),
    )
    write_json(out / "fit.json", report)
    plot_report(out, result, real.images, real_stats, before_data, after_data, job.sim)
    print(f"fit: distance {before['total']:.3f} -> {after['total']:.3f} ({100 * report['distance_reduction']:.0f} % lower), "
          f"{result.seconds:.0f} s, {result.step_seconds:.2f} s/step; report in {out}")
    return report


def run(job: FitJob) -> None:
    from .generate import enable_compilation_cache

    enable_compilation_cache()
    reports = []
    for diseases in job.classes:
        out = job.out / diseases[0].lower() if len(job.classes) > 1 else job.out
        reports.append(run_one(job, diseases, out))
    if job.write_preset:
        path = write_preset(job.fov_name, reports[0]["values"])
        print(f"fit: wrote the fitted values to {path}")
    print(json.dumps({r["diseases"][0] if len(reports) > 1 else "fit": dict(distance_before=r["distance_before"]["total"],
                      distance_after=r["distance_after"]["total"], fit_seconds=r["fit_seconds"]) for r in reports}))
