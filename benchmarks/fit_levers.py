"""Where a fitted preset's remaining offset from real eyes lies, and whether the fit's parameters can move it.

The feature classifier two-sample test (``benchmarks/realism.py``) separates real from synthetic eyes
along the offset of the 36-feature means, whitened by the real eyes' feature correlation (its squared
length is the squared Mahalanobis distance of the means, ``stats.mahalanobis_terms``). This script
takes the Jacobian of that whitened offset with respect to the fit's unconstrained parameters (the
logits `svr fit` optimises, ``svr_jax.fit.DEFAULT_FIT_PARAMS``) at the preset, by forward differences
over one fixed pool of synthetic eyes (common random numbers: every evaluation draws the same eyes, so
the differences are not sampling noise; finite differences also see the vessel graph's discrete changes,
which the pathwise gradient does not), and reports:

* the Jacobian's singular values and how much of the offset lies along directions with singular value
  above a threshold (``offset_by_singular_value``): a direction with singular value s needs a parameter
  move of 1/s logits per unit of whitened offset; where the offset sits only along small s, the
  parameters have no lever on what still separates the two;
* each parameter's lever (``lever_by_parameter``: the norm of its Jacobian column);
* damped Gauss-Newton (Levenberg-Marquardt) steps at several dampings: the squared distance the linear
  model predicts against what the step achieves on the pool and on fresh eyes (``lm_steps``). When the
  achieved values stay far above the predicted ones even for short steps, the offset lies where the
  model is curved, not only weakly steered;
* the feature offsets (in real standard deviations) that lie along the weak directions (singular value
  below ``--weak``): what the model would need a new lever for.

    python benchmarks/fit_levers.py --real ../shared/data/octa500 --fov 3mm [--pool 128] [--quick]

The last printed line is one JSON object. About 5 minutes on a 2-core CPU at the default pool of 128.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (10.0, 5.0, 2.0, 1.0, 0.5)


def main(argv=None) -> int:
    from svr_jax.realdata import default_octa500_dir

    from svr_jax.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fov", default="3mm", choices=sorted(PRESETS))
    parser.add_argument("--real", type=Path, default=default_octa500_dir())
    parser.add_argument("--pool", type=int, default=128, help="synthetic eyes per evaluation (the same eyes every time)")
    parser.add_argument("--step", type=float, default=0.15, help="finite-difference step in logits")
    parser.add_argument("--damping", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--weak", type=float, default=1.0, help="singular value below which a direction counts as weak")
    parser.add_argument("--seed", type=int, default=4_242_000)
    parser.add_argument("--quick", action="store_true", help="128 px field, pool 16, synthetic 'real' eyes (a smoke run)")
    args = parser.parse_args(argv)

    import jax.numpy as jnp

    from svr_jax import fit as fit_lib
    from svr_jax import stats as stats_lib
    from svr_jax.presets import preset_params
    from svr_jax.variability import default_variability
    from svr_jax.realdata import load_folder

    t_start = time.perf_counter()
    cfg, params = preset_params(args.fov)
    pool = args.pool
    variability = default_variability()
    if args.quick:
        cfg = dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, size_px=128, fov_mm=cfg.field.fov_mm * 128 / cfg.field.size_px))
        pool = 16
        real_images = fit_lib.simulate_images(dataclasses.replace(params, appearance=dataclasses.replace(params.appearance, gain=1.5)),
                                              cfg, n=48, seed=777, variability=variability)
        source = "synthetic (--quick)"
    else:
        real_images = load_folder(args.real, scan_mm=cfg.field.fov_mm, disease="NORMAL", size_px=cfg.field.size_px, half="fit").images
        source = str(args.real)
    n_real = len(real_images)
    _, summary = fit_lib.real_summary(real_images, cfg, joint=True)
    whitener = np.asarray(summary["joint"]["whitener"], np.float64)
    fit_params = fit_lib.DEFAULT_FIT_PARAMS
    names = stats_lib.feature_names(cfg.field.size_px, cfg.field.pixel_um)

    def features(logits: np.ndarray, seed: int, n: int) -> np.ndarray:
        values = fit_lib.to_constrained(jnp.asarray(logits, jnp.float32), fit_params)
        images = fit_lib.simulate_images(fit_lib.insert(params, fit_params, values), cfg, n=n, seed=seed, variability=variability)
        return np.asarray(stats_lib.feature_vector(fit_lib.real_summary(images, cfg)[0]), np.float64)

    def offset(feats: np.ndarray) -> np.ndarray:
        """Whitened offset of the feature means; its squared norm is the squared Mahalanobis distance."""
        return whitener @ stats_lib.mahalanobis_terms(feats, summary)[0]

    def heldout(logits: np.ndarray) -> float:
        r = offset(features(logits, args.seed + 1_000_003, n_real))
        return float(r @ r)

    x0 = np.asarray(fit_lib.to_unconstrained(fit_lib.select(params, fit_params), fit_params), np.float64)
    r0 = offset(features(x0, args.seed, pool))
    jacobian = np.zeros((len(r0), len(x0)))
    for i in range(len(x0)):
        x = x0.copy()
        x[i] += args.step
        jacobian[:, i] = (offset(features(x, args.seed, pool)) - r0) / args.step
    u, s, vt = np.linalg.svd(jacobian, full_matrices=False)
    along = u.T @ r0  # the offset in the left singular basis
    outside = r0 - u @ along  # beyond the Jacobian's range (non-zero only with fewer parameters than features)
    by_threshold = {f"above {t:g}": round(float(np.sum(along[s > t] ** 2)), 3) for t in THRESHOLDS}
    by_threshold["outside the range"] = round(float(outside @ outside), 3)
    levers = {p.path: round(float(np.linalg.norm(jacobian[:, i])), 3) for i, p in enumerate(fit_params)}
    print(f"{args.fov}: squared Mahalanobis distance on the pool {r0 @ r0:.3f} ({pool} eyes); singular values "
          f"{np.round(s, 2).tolist()}", flush=True)
    print(f"  offset energy along directions with singular value {by_threshold}", flush=True)
    print("  weakest levers: " + ", ".join(f"{k} {v}" for k, v in sorted(levers.items(), key=lambda kv: kv[1])[:8]), flush=True)

    # Levenberg-Marquardt: minimise |r0 + J d|^2 + damping |d|^2, then measure the step.
    lm = []
    for damping in args.damping:
        step = -vt.T @ ((s / (s**2 + damping)) * along)
        predicted = float(np.sum((r0 + jacobian @ step) ** 2))
        r_pool = offset(features(x0 + step, args.seed, pool))
        lm.append(dict(damping=damping, step_norm=round(float(np.linalg.norm(step)), 3), predicted=round(predicted, 3),
                       achieved_pool=round(float(r_pool @ r_pool), 3), achieved_heldout=round(heldout(x0 + step), 3)))
        print(f"  LM step, damping {damping:g}: |step| {lm[-1]['step_norm']} logits, predicted {predicted:.3f}, achieved "
              f"{lm[-1]['achieved_pool']} on the pool, {lm[-1]['achieved_heldout']} on fresh eyes", flush=True)

    # The part of the offset the parameters cannot steer, back in feature units (real standard deviations).
    weak = s < args.weak
    chol = np.linalg.inv(whitener)
    z_weak = chol @ (u[:, weak] @ along[weak] + outside)
    weak_features = {names[i]: round(float(z_weak[i]), 2) for i in np.argsort(-np.abs(z_weak))[:8]}
    print(f"  offsets along directions with singular value < {args.weak:g} (real SD): {weak_features}", flush=True)
    print(json.dumps(dict(
        fov=args.fov, real=source, n_real=n_real, pool=pool, variability=variability, fd_step_logits=args.step,
        mahalanobis2_pool=round(float(r0 @ r0), 3), mahalanobis2_heldout=round(heldout(x0), 3),
        singular_values=np.round(s, 3).tolist(), offset_by_singular_value=by_threshold, lever_by_parameter=levers,
        lm_steps=lm, weak_offsets=weak_features, seconds=round(time.perf_counter() - t_start, 1),
    )))
    return 0


if __name__ == "__main__":
    sys.exit(main())
