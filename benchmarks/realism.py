"""Realism of the simulator against real OCTA, measured on eyes and statistics the fit never saw.

Protocol (docs/design/realism-protocol.md): per field of view, the real NORMAL eyes of the *held-out*
half of the committed split (``svr_jax/data/octa500_split.json``; ``svr fit`` reads the other half)
against as many synthetic images as the CLI writes them: the preset ``conf/fov/<fov>.yaml`` at the
default variability of ``svr generate`` (``conf/generate.yaml``), normal stage, quantised to 8 bits,
from seeds no fit uses. Three classifier two-sample tests (``svr_jax.c2st``; 0.5 = indistinguishable):

* ``c2st_fit_stats``: over the 36 features the fit matches (``svr_jax.stats.feature_vector``);
  ``c2st_fit_by_group``: each of its statistic groups alone;
* ``c2st_heldout_stats``: over the held-out families (``svr_jax.heldout_stats``: GLCM, LBP, Frangi
  vesselness at four scales, intensity-histogram shape, vessel-map skeleton), which no fit uses;
  ``c2st_heldout_by_family``: each family alone;
* ``c2st_cnn``: a CNN on the images, trained on each fold until it fits it; ``cnn_train_acc`` beside.

The feature tests report the better of logistic regression and gradient boosting (both printed).
``top_offsets``: the statistics (fit and held-out) whose synthetic mean lies furthest from the real
mean, in real standard deviations, so the next fit knows where to look.

    python benchmarks/realism.py --real ../shared/data/octa500 --fov 3mm 6mm [--quick]

``--quick``: 24 held-out eyes per field and a shorter CNN budget. The last printed line is one JSON
object: ``c2st_fit_stats_3mm``, ``c2st_heldout_stats_3mm``, ``c2st_cnn_3mm``, ``cnn_train_acc_3mm``
(and the same for each field), and ``by_fov`` with everything per field.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from svr_jax.realdata import default_octa500_dir

TOP_OFFSETS = 10
SYNTHETIC_SEED_OFFSET = 2_000_003  # synthetic keys of this benchmark: no fit uses them (fits: seed + step * batch)



def cli_images(params, cfg, *, n: int, seed: int, variability: float) -> np.ndarray:
    """[n, H, W] synthetic images as ``svr generate`` writes them: 8-bit, read back as value / 255."""
    from svr_jax.fit import simulate_images
    from svr_jax.io import to_uint8

    return to_uint8(simulate_images(params, cfg, n=n, seed=seed, variability=variability)).astype(np.float32) / 255.0


def top_offsets(tables: dict[str, tuple[np.ndarray, np.ndarray, list[str]]], count: int = TOP_OFFSETS) -> list[dict]:
    """{family: (real [N, k], synthetic [M, k], names)} -> the ``count`` entries with the largest |z|."""
    from svr_jax.c2st import standardised_offsets

    rows = []
    for family, (real, synthetic, names) in tables.items():
        for name, z in zip(names, standardised_offsets(real, synthetic)):
            rows.append(dict(family=family, statistic=name, z=round(float(z), 2)))
    return sorted(rows, key=lambda r: -abs(r["z"]))[:count]


def evaluate_fov(fov: str, real_dir: Path, *, limit: int | None, seed: int, variability: float, cnn_settings, cnn: bool,
                 architecture: str | None = None) -> dict:
    from svr_jax import heldout_stats
    from svr_jax import stats as stats_lib
    from svr_jax.c2st import cnn_c2st, feature_c2st
    from svr_jax.presets import preset_params
    from svr_jax.fit import real_summary
    from svr_jax.realdata import load_folder

    started = time.perf_counter()
    cfg, params = preset_params(fov, architecture)
    field = cfg.field
    real = load_folder(real_dir, scan_mm=field.fov_mm, disease="NORMAL", size_px=field.size_px, limit=limit, half="heldout")
    n = len(real)
    synthetic = cli_images(params, cfg, n=n, seed=seed + SYNTHETIC_SEED_OFFSET, variability=variability)
    labels = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    print(f"{fov}: {n} held-out real eyes read, {n} synthetic images made ({time.perf_counter() - started:.0f} s)", flush=True)
    out = dict(fov=fov, n_real=n, n_synthetic=n, real_half="heldout", variability=variability)

    # The fit's own statistics (what `svr fit` matches).
    real_stats, _ = real_summary(real.images, cfg)
    syn_stats, _ = real_summary(synthetic, cfg)
    fit_real = np.asarray(stats_lib.feature_vector(real_stats))
    fit_syn = np.asarray(stats_lib.feature_vector(syn_stats))
    fit_test = feature_c2st(np.concatenate([fit_real, fit_syn]), labels, seed=seed)
    out["c2st_fit_stats"], out["c2st_fit_stats_by_classifier"] = fit_test["c2st"], fit_test
    out["c2st_fit_by_group"] = {g: round(feature_c2st(np.concatenate([real_stats[g], syn_stats[g]]), labels, seed=seed)["c2st"], 3)
                                for g in stats_lib.FEATURE_GROUPS}

    # The held-out families (never fitted).
    real_held = heldout_stats.batch_features(real.images, pixel_um=field.pixel_um)
    syn_held = heldout_stats.batch_features(synthetic, pixel_um=field.pixel_um)
    print(f"{fov}: statistics computed ({time.perf_counter() - started:.0f} s)", flush=True)
    families = heldout_stats.FAMILIES
    held_test = feature_c2st(np.concatenate([np.concatenate([real_held[f] for f in families], 1),
                                             np.concatenate([syn_held[f] for f in families], 1)]), labels, seed=seed)
    out["c2st_heldout_stats"], out["c2st_heldout_stats_by_classifier"] = held_test["c2st"], held_test
    out["c2st_heldout_by_family"] = {f: round(feature_c2st(np.concatenate([real_held[f], syn_held[f]]), labels, seed=seed)["c2st"], 3)
                                     for f in families}

    # Where to look next: standardised offsets of every statistic, fit and held-out.
    fit_names = stats_lib.statistic_names(field.size_px, field.pixel_um)
    held_names = heldout_stats.family_names()
    tables = {f"fit:{g}": (real_stats[g], syn_stats[g], fit_names[g]) for g in stats_lib.FEATURE_GROUPS}
    tables.update({f"heldout:{f}": (real_held[f], syn_held[f], held_names[f]) for f in families})
    out["top_offsets"] = top_offsets(tables)
    out["top_offsets_heldout"] = top_offsets({k: v for k, v in tables.items() if k.startswith("heldout:")})

    if cnn:
        result = cnn_c2st(np.concatenate([real.images, synthetic]), labels, seed=seed, settings=cnn_settings, progress=True)
        out["c2st_cnn"], out["cnn_train_acc"], out["cnn_steps"] = result["c2st"], result["train_accuracy"], result["steps"]
    out["seconds"] = round(time.perf_counter() - started, 1)

    print(f"{fov}: {n} held-out real NORMAL eyes vs {n} synthetic (variability {variability})", flush=True)
    print(f"{fov}: C2ST fit statistics {out['c2st_fit_stats']:.3f} (logistic {fit_test['logistic']:.3f}, boosting "
          f"{fit_test['boosting']:.3f}); per group {out['c2st_fit_by_group']}", flush=True)
    print(f"{fov}: C2ST held-out statistics {out['c2st_heldout_stats']:.3f} (logistic {held_test['logistic']:.3f}, boosting "
          f"{held_test['boosting']:.3f}); per family {out['c2st_heldout_by_family']}", flush=True)
    if cnn:
        print(f"{fov}: C2ST CNN {out['c2st_cnn']:.3f} (training-fold accuracy {out['cnn_train_acc']:.3f}, "
              f"{out['cnn_steps']:.0f} steps per fold)", flush=True)
    print(f"{fov}: largest standardised offsets (synthetic - real mean, real sd): "
          + "; ".join(f"{r['family']} {r['statistic']} {r['z']:+.2f}" for r in out["top_offsets"]), flush=True)
    return out


def main(argv=None) -> int:
    from svr_jax.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=default_octa500_dir(), help="real data folder (labels.csv layout)")
    parser.add_argument("--fov", nargs="+", default=["3mm", "6mm"], choices=sorted(PRESETS))
    parser.add_argument("--quick", action="store_true", help="24 held-out eyes per field, a shorter CNN budget")
    parser.add_argument("--no-cnn", action="store_true")
    parser.add_argument("--architecture", choices=("colonisation", "branching"), default=None,
                        help="the trees' growth (GrowthConfig.architecture); default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variability", type=float, default=None,
                        help="per-sample parameter spread of the synthetic images (default: generate/export's, conf/generate.yaml)")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"realism: error: real data folder {str(args.real)!r} does not exist (--real DIR or $SVR_OCTA500)", file=sys.stderr)
        return 2
    from svr_jax.c2st import CnnSettings
    from svr_jax.runtime import enable_compilation_cache
    from svr_jax.variability import default_variability

    enable_compilation_cache()
    started = time.perf_counter()
    variability = default_variability() if args.variability is None else args.variability
    cnn_settings = CnnSettings(max_steps=200) if args.quick else CnnSettings()
    by_fov = {fov: evaluate_fov(fov, args.real, limit=24 if args.quick else None, seed=args.seed, variability=variability,
                                cnn_settings=cnn_settings, cnn=not args.no_cnn, architecture=args.architecture) for fov in args.fov}
    summary = {}
    for fov, result in by_fov.items():
        for key in ("c2st_fit_stats", "c2st_heldout_stats", "c2st_cnn"):
            summary[f"{key}_{fov}"] = result.get(key)
        summary[f"cnn_train_acc_{fov}"] = result.get("cnn_train_acc")
        summary[f"n_real_{fov}"] = result["n_real"]
    summary.update(real_half="heldout", architecture=args.architecture, variability=variability, seed=args.seed, quick=args.quick,
                   seconds=round(time.perf_counter() - started, 1), by_fov=by_fov)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
