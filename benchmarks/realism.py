"""Realism of the simulator against real OCTA: classifier two-sample tests and statistic distances.

For each field of view, real normal eyes (labels.csv) are compared with as many synthetic images from
(a) the library defaults ("default") and (b) the fitted preset in ``conf/fov/<fov>.yaml`` ("fitted"),
each sample's parameters drawn around them at ``--variability`` (default: that of `svr generate`/`svr
export`, ``conf/generate.yaml``: what users get). Synthetic images use seeds that no fit uses.

* C2ST, feature classifier: L2-regularised logistic regression on the fixed 36-feature set of
  ``svr_jax.stats.feature_vector`` (intensity quantiles, radial power spectrum bands, multi-scale local
  standard deviation, Hessian ridge energies and coherence, row/column gradient energy and row-mean
  spread, soft vessel densities, soft FAZ measures), standardised on the training folds; stratified
  k-fold cross-validation; the reported accuracy is on the held-out folds. 0.5 = indistinguishable.
  ``c2st_by_group``: the same test on each statistics group alone (where the two still differ).
* C2ST, small CNN (plain JAX): three strided 3x3 conv layers (8/16/32 channels) on the 2x
  average-pooled image, global mean+std pooling, a linear read-out; Adam, a few epochs, k-fold.
* Statistic distances: ``svr_jax.stats.moment_distance`` per group and in total; apart, ``distance_joint``:
  the squared Mahalanobis distance of the feature means under the real (shrunk) correlation, per feature,
  which is what the feature classifier exploits (``summarize(..., joint=True)``); ``mahalanobis2``, the
  same over all features (not per feature, not bias-corrected), and ``largest_terms``, the features that
  carry most of it (``svr_jax.stats.mahalanobis_terms``: z, the mean offset in real spreads, and its term).
* Outside the classifier's features, the vessel layout round the fovea: ``circumferential_bias``, how far
  the line structures in distance bands from the field centre run along circles round it (+1) rather
  than towards it (-1) (``svr_jax.metrics.circumferential_bias``), real (mean, sd) vs default vs fitted;
  and ``spectral_anisotropy``, the log power along the rows' frequency axis minus the columns' by
  frequency (``svr_jax.metrics.spectral_anisotropy``): real scans' structures run vertically at the
  capillary-mesh scale and are isotropic at the pixel scale.
* Population spread: the median ratio of synthetic to real feature standard deviations for the fitted
  preset at ``variability`` 0, 0.3 and 1 (``spread_ratio``; 1 = synthetic eyes vary as real ones do),
  and the feature C2ST at each (``c2st_by_variability``, other seeds than ``c2st_features``): the
  presets are fitted as populations at 0.3, the training-set setting.

    python benchmarks/realism.py --real ../shared/data/octa500 --fov 3mm 6mm [--quick]

The last printed line is one JSON object; ``c2st`` is the feature classifier's accuracy for the fitted
preset of the first field of view.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def default_real_dir() -> Path:
    return Path(os.environ.get("SVR_OCTA500", REPO.parent / "shared" / "data" / "octa500"))


def logistic_c2st(features: np.ndarray, labels: np.ndarray, *, k: int = 5, l2: float = 1.0, seed: int = 0) -> float:
    """Mean held-out accuracy of L2 logistic regression over stratified k folds."""
    from svr_jax.metrics import fit_logistic, stratified_folds

    correct = 0
    for test in stratified_folds(labels, k, seed):
        train = np.setdiff1d(np.arange(len(labels)), test)
        decision = fit_logistic(features[train], labels[train], l2=l2)
        correct += np.sum((decision(features[test]) > 0) == (labels[test] > 0.5))
    return float(correct / len(labels))


def cnn_c2st(images: np.ndarray, labels: np.ndarray, *, k: int = 3, epochs: int = 6, seed: int = 0) -> float:
    """Held-out accuracy of a small CNN (plain JAX) over stratified k folds."""
    import jax
    import jax.numpy as jnp
    import optax

    h = images.shape[1] // 2 * 2
    x_all = images[:, :h, :h].reshape(len(images), h // 2, 2, h // 2, 2).mean((2, 4))[..., None].astype(np.float32)
    channels = (8, 16, 32)

    def init(key):
        params, c_in = [], 1
        for c in channels:
            key, sub = jax.random.split(key)
            params.append(dict(w=jax.random.normal(sub, (3, 3, c_in, c)) * np.sqrt(2.0 / (9 * c_in)), b=jnp.zeros(c)))
            c_in = c
        key, sub = jax.random.split(key)
        params.append(dict(w=jax.random.normal(sub, (2 * c_in,)) * 0.01, b=jnp.zeros(())))
        return params

    def logits(params, x):
        for layer in params[:-1]:
            x = jax.lax.conv_general_dilated(x, layer["w"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + layer["b"])
        pooled = jnp.concatenate([x.mean((1, 2)), x.std((1, 2))], -1)
        return pooled @ params[-1]["w"] + params[-1]["b"]

    def loss(params, x, y):
        z = logits(params, x)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    optimizer = optax.adam(3e-3)

    @jax.jit
    def step(params, opt, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt = optimizer.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    predict = jax.jit(logits)
    rng = np.random.default_rng(seed)
    correct = 0
    from svr_jax.metrics import stratified_folds

    for i, test in enumerate(stratified_folds(labels, k, seed)):
        train = np.setdiff1d(np.arange(len(labels)), test)
        params = init(jax.random.key(seed + i))
        opt = optimizer.init(params)
        batch = 16
        for _ in range(epochs):
            order = rng.permutation(train)
            for start in range(0, len(order) - batch + 1, batch):
                idx = order[start : start + batch]
                xb = x_all[idx]
                xb = np.where(rng.random((len(idx), 1, 1, 1)) < 0.5, xb[:, :, ::-1], xb)  # flips: laterality is not a cue
                params, opt, _ = step(params, opt, jnp.asarray(xb), jnp.asarray(labels[idx], jnp.float32))
        preds = np.concatenate([np.asarray(predict(params, jnp.asarray(x_all[test[j : j + 32]]))) for j in range(0, len(test), 32)])
        correct += np.sum((preds > 0) == (labels[test] > 0.5))
    return float(correct / len(labels))


def evaluate_fov(fov: str, real_dir: Path, *, limit: int | None, cnn: bool, epochs: int, seed: int, variability: float) -> dict:
    import jax.numpy as jnp

    from svr_jax import config as config_lib
    from svr_jax import stats as stats_lib
    from svr_jax.commands.generate import preset_params
    from svr_jax.fit import real_summary, simulate_images
    from svr_jax.metrics import ANISOTROPY_FREQUENCIES, ORIENTATION_BANDS_MM, circumferential_bias, spectral_anisotropy
    from svr_jax.realdata import load_folder

    cfg, fitted = preset_params(fov)
    defaults = config_lib.default_params(cfg)
    real = load_folder(real_dir, scan_mm=cfg.field.fov_mm, disease="NORMAL", size_px=cfg.field.size_px, limit=limit)
    n = len(real)
    real_stats, summary = real_summary(real.images, cfg, joint=True)
    real_features = np.asarray(stats_lib.feature_vector(real_stats))
    names = stats_lib.feature_names(cfg.field.size_px, cfg.field.pixel_um)
    out = dict(fov=fov, n_real=n, n_synthetic=n, variability=variability)
    # Outside the classifier's features: do the line structures run round the fovea as in real eyes?
    real_bias, real_aniso = circumferential_bias(real.images, cfg.field.fov_mm), spectral_anisotropy(real.images)
    orientation = dict(bands_mm=[list(b) for b in ORIENTATION_BANDS_MM], real=_rounded(real_bias.mean(0)), real_sd=_rounded(real_bias.std(0)))
    anisotropy = dict(cycles_per_px=list(ANISOTROPY_FREQUENCIES), real=_rounded(real_aniso.mean(0)), real_sd=_rounded(real_aniso.std(0)))
    for name, params in (("default", defaults), ("fitted", fitted)):
        t0 = time.perf_counter()
        images = simulate_images(params, cfg, n=n, seed=seed + 2_000_003, variability=variability)
        syn_stats, _ = real_summary(images, cfg)
        distances = stats_lib.moment_distance({g: jnp.asarray(v) for g, v in syn_stats.items()}, summary)
        features = np.concatenate([real_features, np.asarray(stats_lib.feature_vector(syn_stats))])
        labels = np.concatenate([np.zeros(n), np.ones(n)])
        result = dict(
            c2st_features=logistic_c2st(features, labels, seed=seed),
            # The same test on each statistics group alone: where real and synthetic still differ.
            c2st_by_group={g: round(logistic_c2st(np.concatenate([real_stats[g], syn_stats[g]]), labels, seed=seed), 3)
                           for g in stats_lib.FEATURE_GROUPS},
            distance={g: float(v) for g, v in distances.items() if g != "joint"},
            distance_total=float(stats_lib.group_total(distances)),
            distance_joint=float(distances["joint"]),
        )
        # Which features carry that separation: each feature's share of the squared Mahalanobis distance.
        z, terms = stats_lib.mahalanobis_terms(features[n:], summary)
        result["mahalanobis2"] = round(float(np.sum(terms)), 3)
        result["largest_terms"] = {names[i]: dict(z=round(float(z[i]), 2), term=round(float(terms[i]), 2))
                                   for i in np.argsort(-np.abs(terms))[:LARGEST_TERMS]}
        if cnn:
            result["c2st_cnn"] = cnn_c2st(np.concatenate([real.images, images]), labels, epochs=epochs, seed=seed)
        orientation[name] = _rounded(circumferential_bias(images, cfg.field.fov_mm).mean(0))
        anisotropy[name] = _rounded(spectral_anisotropy(images).mean(0))
        result["seconds"] = time.perf_counter() - t0
        out[name] = result
        print(f"{fov} {name}: C2ST features {result['c2st_features']:.3f}"
              + (f", CNN {result['c2st_cnn']:.3f}" if cnn else "") + f", distance {result['distance_total']:.3f} (joint {result['distance_joint']:.3f}); "
              f"C2ST per group {result['c2st_by_group']}", flush=True)
        print(f"{fov} {name}: squared Mahalanobis distance of the feature means {result['mahalanobis2']:.2f}, largest terms "
              + ", ".join(f"{k} {v['term']:+.2f} (z {v['z']:+.2f})" for k, v in result["largest_terms"].items()), flush=True)
    out["circumferential_bias"], out["spectral_anisotropy"] = orientation, anisotropy
    print(f"{fov}: spectral anisotropy (log power along rows minus down columns) at {anisotropy['cycles_per_px']} cycles/px: "
          f"real {anisotropy['real']} (sd {anisotropy['real_sd']}), default {anisotropy['default']}, fitted {anisotropy['fitted']}", flush=True)
    print(f"{fov}: circumferential bias of the line structures by distance from the centre {orientation['bands_mm']} mm: "
          f"real {orientation['real']} (sd {orientation['real_sd']}), default {orientation['default']}, fitted {orientation['fitted']}", flush=True)
    out["distance_reduction"] = 1.0 - out["fitted"]["distance_total"] / max(out["default"]["distance_total"], 1e-12)
    out["c2st_drop"] = out["default"]["c2st_features"] - out["fitted"]["c2st_features"]
    out.update(by_variability(cfg, fitted, real_features, n=n, seed=seed + 3_000_017))
    print(f"{fov} fitted, by variability: median sd ratio synthetic/real of the features {out['spread_ratio']}, "
          f"C2ST features {out['c2st_by_variability']}", flush=True)
    return out


def _rounded(values) -> list[float]:
    return [round(float(v), 3) for v in values]


SPREAD_SCALES = (0.0, 0.3, 1.0)
LARGEST_TERMS = 6


def by_variability(cfg, params, real_features: np.ndarray, *, n: int, seed: int) -> dict:
    """``spread_ratio``: {variability: median over the features of sd(synthetic) / sd(real)}, how widely
    synthetic eyes vary around the preset (``svr_jax.variability``) compared with real normal eyes
    (1 = as widely); ``c2st_by_variability``: {variability: feature C2ST against the real eyes}."""
    from svr_jax import stats as stats_lib
    from svr_jax.fit import real_summary, simulate_images

    spread, c2st = {}, {}
    labels = np.concatenate([np.zeros(len(real_features)), np.ones(n)])
    for scale in SPREAD_SCALES:
        images = simulate_images(params, cfg, n=n, seed=seed, variability=scale)
        features = np.asarray(stats_lib.feature_vector(real_summary(images, cfg)[0]))
        spread[str(scale)] = round(float(np.median(features.std(0) / (real_features.std(0) + 1e-12))), 3)
        c2st[str(scale)] = round(logistic_c2st(np.concatenate([real_features, features]), labels, seed=seed), 3)
    return dict(spread_ratio=spread, c2st_by_variability=c2st)


def main(argv=None) -> int:
    from svr_jax.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=default_real_dir(), help="real data folder (labels.csv layout)")
    parser.add_argument("--fov", nargs="+", default=["3mm", "6mm"], choices=sorted(PRESETS))
    parser.add_argument("--quick", action="store_true", help="24 real images per field, no CNN")
    parser.add_argument("--no-cnn", action="store_true")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variability", type=float, default=None,
                        help="per-sample parameter spread of the synthetic images (default: generate/export's, conf/generate.yaml)")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"realism: error: real data folder {str(args.real)!r} does not exist (--real DIR or $SVR_OCTA500)", file=sys.stderr)
        return 2
    import jax

    cache = os.environ.get("SVR_JAX_CACHE", str(Path.home() / ".cache" / "svr_jax" / "xla"))
    if cache:  # persistent XLA cache, as `svr generate` uses
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    from svr_jax.commands.generate import default_variability

    variability = default_variability() if args.variability is None else args.variability
    by_fov = {}
    for fov in args.fov:
        by_fov[fov] = evaluate_fov(fov, args.real, limit=24 if args.quick else None, cnn=not (args.quick or args.no_cnn),
                                   epochs=args.epochs, seed=args.seed, variability=variability)
    first = by_fov[args.fov[0]]
    summary = dict(
        c2st=first["fitted"]["c2st_features"],
        c2st_default=first["default"]["c2st_features"],
        c2st_cnn=first["fitted"].get("c2st_cnn"),
        c2st_cnn_default=first["default"].get("c2st_cnn"),
        distance_default=first["default"]["distance_total"],
        distance_fitted=first["fitted"]["distance_total"],
        distance_reduction=first["distance_reduction"],
        fov=args.fov[0],
        variability=variability,
        quick=args.quick,
        by_fov=by_fov,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
