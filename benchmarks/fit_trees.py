"""Fit the space-colonisation trees' settings to the FIT half of the real large-vessel masks.

    python benchmarks/fit_trees.py --real ../shared/data/octa500 --field 3mm --evals 60
    python benchmarks/fit_trees.py --real ../shared/data/octa500 --field 6mm --evals 60

What is fitted: the continuous ``VesselParams`` that only the colonisation trees read (``FITTED``), each in
a box (``BOUNDS``); ``murray_exponent`` / ``tortuosity_rad`` stay the preset's (the fixed-layout
"branching" trees read them too). With ``--counts``, a coordinate pass over the static counts
(``COUNT_STEPS``: attractors, steps, twig pruning, nodes per step; each change recompiles) follows.
The objective is a standardised distance between the morphology measures of ``benchmarks/
vessel_morphology.py`` (``measure_mask``) on the fit-half NORMAL eyes and on ``--n-syn`` synthetic masks
of the candidate: per measure, the squared difference of the means in units of the real sd, plus a
quarter of the squared log ratio of the sds, averaged over measures. Every candidate is rendered with
the same sample keys (common random numbers), so two candidates differ by their settings, not by luck.

The search: ``--evals`` evaluations of a (1+λ) evolution strategy in the box's unit cube (λ candidates
round the best so far, Gaussian steps that shrink when a round brings no improvement), started from the
preset's values (or, ``--start``, from an earlier run's). At the end the fit-half C2ST (logistic regression and boosted trees over the measures,
5-fold) of the start and of the best is printed. The held-out half is never read: judge the result with
``vessel_morphology.py --half heldout``. The last line is one JSON object with the chosen values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vessel_morphology as vm  # noqa: E402

# (name, low, high) per field; the step's box stops at the field's GrowthConfig.max_step_mm.
BOUNDS = {
    "growth_step_mm": (0.02, None),
    "influence_mm": (0.3, 2.5),
    "kill_mm": (0.03, 0.25),
    "demand_clearance_mm": (0.0, 0.25),
    "leaf_radius_um": (5.0, 14.0),
    "arcade_guidance": (0.0, 1.5),
    "arcade_onset_mm": (0.3, 1.5),
    "arcade_band_mm": (0.2, 2.0),
    "raphe_sink_mm": (1.0, 8.0),
    "raphe_pull": (0.0, 2.0),
    "demand_ecc_exponent": (-1.0, 2.0),
    "growth_inertia": (0.0, 1.5),
    "foveal_pull": (0.0, 1.0),
    "kind_owned_demand": (0.0, 1.0),
    "tree_radius_sd": (0.0, 0.5),
    "leaf_radius_sd": (0.0, 0.5),
}
# The 6 mm field's vessels are wider in microns (OCTA-500's 6 mm masks are drawn on 15 µm pixels).
BOUNDS_6MM = {**BOUNDS, "leaf_radius_um": (6.0, 22.0), "influence_mm": (0.3, 3.5), "arcade_guidance": (0.0, 3.0),
              "arcade_onset_mm": (0.5, 2.5), "arcade_band_mm": (0.3, 3.0)}
FITTED = tuple(BOUNDS)
SD_FLOOR = 1e-3  # a measure whose real sd is ~0 (e.g. a ring the field never reaches) still counts finitely


def box(cfg) -> tuple[np.ndarray, np.ndarray]:
    bounds = BOUNDS_6MM if cfg.field.fov_mm >= 4.5 else BOUNDS
    lo = np.array([bounds[n][0] for n in FITTED])
    hi = np.array([cfg.growth.max_step_mm if bounds[n][1] is None else bounds[n][1] for n in FITTED])
    return lo, hi


def distance(f_real: np.ndarray, f_syn: np.ndarray) -> float:
    """Mean over measures of ((mean_syn - mean_real) / sd_real)^2 + 0.25 log(sd_syn / sd_real)^2."""
    mu_r, sd_r = f_real.mean(0), f_real.std(0)
    mu_s, sd_s = f_syn.mean(0), f_syn.std(0)
    scale = np.maximum(sd_r, SD_FLOOR * (np.abs(mu_r) + SD_FLOOR))
    z = (mu_s - mu_r) / scale
    log_sd = np.log((sd_s + SD_FLOOR * scale) / (sd_r + SD_FLOOR * scale))
    return float(np.mean(z**2 + 0.25 * log_sd**2))


# The static counts (GrowthConfig) a coordinate pass tries, each as a few alternatives to its current value;
# only those the colonisation trees alone read (n_roots / disc_roots shape the "branching" trees too).
COUNT_STEPS = {
    "attractors": lambda v: (int(v * 0.7), int(v * 1.4)),
    "colonisation_steps": lambda v: (int(v * 0.75), int(v * 1.3)),
    "min_twig_steps": lambda v: (max(1, v - 2), v + 2),
    "new_per_step": lambda v: (int(v * 0.7), int(v * 1.4)),
}


def with_counts(cfg, counts: dict):
    return dataclasses.replace(cfg, growth=dataclasses.replace(cfg.growth, **counts))


def with_values(params, values: dict):
    return dataclasses.replace(params, vessels=dataclasses.replace(params.vessels, **{k: float(v) for k, v in values.items()}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--field", choices=tuple(vm.FIELDS), default="3mm")
    ap.add_argument("--evals", type=int, default=60, help="candidate evaluations (the start included)")
    ap.add_argument("--lam", type=int, default=6, help="candidates per round")
    ap.add_argument("--n-syn", type=int, default=48, help="synthetic masks per evaluation")
    ap.add_argument("--sigma", type=float, default=0.15, help="first step size, fraction of each box side")
    ap.add_argument("--seed", type=int, default=1234, help="synthetic sample keys (not the benchmark's 777)")
    ap.add_argument("--counts", action="store_true", help="then one coordinate pass over the static counts (a compile each)")
    ap.add_argument("--start", default=None, help="start from the values of an earlier run (its output; last line JSON)")
    args = ap.parse_args(argv)

    fov_mm, _ = vm.FIELDS[args.field]
    real = vm.real_masks(Path(args.real), args.field, "NORMAL", None, half="fit")
    names, f_real = vm.measure_all(real, fov_mm)
    cfg, params = vm.preset_tree_config(args.field, "colonisation")
    if args.start:
        earlier = json.loads(Path(args.start).read_text().strip().splitlines()[-1])
        params = with_values(params, earlier["values"])
        cfg = with_counts(cfg, earlier.get("counts", {}))
    renders = {}
    lo, hi = box(cfg)
    rng = np.random.default_rng(args.seed)

    def evaluate(u: np.ndarray, cfg=cfg):
        if cfg not in renders:  # a new static config: one compile
            renders[cfg] = vm.mask_renderer(cfg)
        values = dict(zip(FITTED, lo + np.clip(u, 0.0, 1.0) * (hi - lo)))
        syn, _ = vm.synthetic_masks(args.field, args.n_syn, args.seed, render=renders[cfg], params=with_values(params, values))
        _, f_syn = vm.measure_all(syn, fov_mm)
        return distance(f_real, f_syn), values, f_syn

    start = np.clip((np.array([float(getattr(params.vessels, n)) for n in FITTED]) - lo) / (hi - lo), 0.0, 1.0)
    t0 = time.time()
    best_d, best_values, best_f = evaluate(start)
    start_d, start_f, best_u = best_d, best_f, start
    print(f"{args.field}: {len(real)} fit-half real masks; start distance {start_d:.3f} ({time.time() - t0:.0f} s incl. compile)", flush=True)
    sigma, n_eval = args.sigma, 1
    while n_eval < args.evals:
        improved = False
        for _ in range(min(args.lam, args.evals - n_eval)):
            u = np.clip(best_u + sigma * rng.standard_normal(len(FITTED)), 0.0, 1.0)
            d, values, f_syn = evaluate(u)
            n_eval += 1
            if d < best_d:
                best_d, best_values, best_f, best_u, improved = d, values, f_syn, u, True
        sigma = sigma if improved else max(0.3 * args.sigma, 0.7 * sigma)
        print(f"  eval {n_eval:3d}: best {best_d:.3f}, sigma {sigma:.3f}, {time.time() - t0:.0f} s", flush=True)
    if args.counts:  # one coordinate pass over the static counts, the continuous values held at the best
        for name, alternatives in COUNT_STEPS.items():
            for value in alternatives(getattr(cfg.growth, name)):
                trial = with_counts(cfg, {name: value})
                d, _, f_syn = evaluate(best_u, trial)
                n_eval += 1
                print(f"  counts {name}={value}: {d:.3f} (best {best_d:.3f}), {time.time() - t0:.0f} s", flush=True)
                if d < best_d:
                    best_d, best_f, cfg = d, f_syn, trial
                    break

    x = np.concatenate([f_real, start_f]), np.concatenate([f_real, best_f])
    y = np.concatenate([np.zeros(len(f_real), int), np.ones(len(start_f), int)])
    c2st_start, c2st_best = vm.feature_c2st(x[0], y, args.seed), vm.feature_c2st(x[1], y, args.seed)
    worst = vm.univariate_auc(f_real, best_f, names)[:6]
    print(f"fit-half C2ST start {c2st_start}, best {c2st_best}")
    print("best, one measure alone (AUC, worst first): " + ", ".join(f"{n} {a:.2f}" for n, a in worst))
    print(json.dumps({"field": args.field, "evals": n_eval, "n_fit_real": len(real), "n_syn": args.n_syn,
                      "distance_start": start_d, "distance_best": best_d,
                      "fit_c2st_start": c2st_start, "fit_c2st_best": c2st_best,
                      "values": {k: round(float(v), 4) for k, v in best_values.items()},
                      "counts": {n: getattr(cfg.growth, n) for n in COUNT_STEPS}, "seconds": round(time.time() - t0)}))


if __name__ == "__main__":
    main()
