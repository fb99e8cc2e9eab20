"""The report of one ``svr fit``: the fit itself, before/after distances on fresh synthetic images,
plots, ``fit.json``, ``params.yaml`` and ``<fov>.yaml`` (the preset with the fitted values)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from . import config as config_lib
from .jobs import FitJob


def params_mapping(values: dict[str, float]) -> dict:
    """{"appearance.gain": 1.3, ...} -> {"appearance": {"gain": 1.3}, ...} (4 significant digits)."""
    nested: dict = {}
    for path, value in values.items():
        group, name = path.split(".")
        nested.setdefault(group, {})[name] = float(f"{value:.4g}")
    return nested


def write_preset(fov_name: str, values: dict[str, float], path: Path) -> Path:
    """Write to ``path`` the preset ``svr_jax/conf/fov/<fov>.yaml`` with ``values`` merged into its
    ``params:`` mapping, keeping its comment header and its other values."""
    from omegaconf import OmegaConf

    from .presets import conf_dir

    source = conf_dir() / "fov" / f"{fov_name}.yaml"
    header = [line for line in source.read_text().splitlines() if line.startswith("#")] if source.exists() else []
    existing = OmegaConf.load(source) if source.exists() else OmegaConf.create({})
    merged = OmegaConf.merge(OmegaConf.create(dict(params=existing.get("params") or {})), dict(params=params_mapping(values)))
    body = OmegaConf.to_yaml(OmegaConf.create(dict(name=fov_name, params=OmegaConf.to_container(merged.params))))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(header + [body.rstrip()]) + "\n")
    tmp.replace(path)
    return path


def evaluate(job: FitJob, real_summary: dict, params: config_lib.SimParams, seed: int) -> tuple[dict, dict]:
    """Per-group distances of ``eval_n`` fresh synthetic images, and their statistics."""
    import jax.numpy as jnp

    from . import stats as stats_lib
    from .fit import real_summary as summarize_images
    from .fit import simulate_images

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

    from . import stats as stats_lib

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


def split_label(half: Optional[str], ids) -> str:
    """What the report says about the split: "fit", "none" (every eye, asked for), or "not applicable"
    (a folder of other eyes than the split's, all read)."""
    from .split import committed_split

    if half is None:
        return "none"
    split = committed_split()
    return half if any(split.half_of(i) for i in ids) else "not applicable"


def fit_statistics(job: FitJob) -> dict[str, list[str]]:
    """What the fit matches: every statistic group of ``svr_jax.stats`` by entry name, and with the joint
    term, the feature vector whose whitened mean it also matches (``svr_jax.stats.feature_names``)."""
    from . import stats as stats_lib

    field = job.sim.field
    names = stats_lib.statistic_names(field.size_px, field.pixel_um)
    if job.joint:
        names["joint"] = stats_lib.feature_names(field.size_px, field.pixel_um)
    return names


def run_one(job: FitJob, diseases: tuple, out: Path) -> dict:
    from omegaconf import OmegaConf

    from .fit import fit, real_summary
    from .io import write_json
    from .realdata import load_folder

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
    write_preset(job.fov_name, result.values, out / f"{job.fov_name}.yaml")
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
