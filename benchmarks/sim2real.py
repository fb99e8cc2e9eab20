"""Sim-to-real: models trained on synthetic images only, scored on labelled real OCTA.

    python benchmarks/sim2real.py --real ../shared/data/octa500            # default size, <= 20 min on 2 CPU cores
    python benchmarks/sim2real.py --quick                                  # small smoke run, a few minutes
    python benchmarks/sim2real.py --n 20000 --cls-steps 4000 --seg-steps 4000   # a GPU-sized run
    python benchmarks/sim2real.py --results                                # also rewrite the table in docs/results.md

1. DR vs normal. Per field of view (3 mm, 6 mm), ``--n`` synthetic images (half normal, half DR spread
   over mild .. PDR, early stages weighted up; per-sample parameters spread by ``svr_jax.variability``) train a compact CNN
   (``svr_jax.nets``, acquisition augmentations, per-image normalisation, 4x block-averaged input) and, for comparison, logistic regression on the fixed statistics of
   ``svr_jax.stats.feature_vector``. Both are scored on the real DR and NORMAL eyes of ``labels.csv``
   (the CNN by its mean logit over the 8 flips and quarter turns of an image): balanced accuracy, AUC,
   confusion matrix; per field and pooled. Each classifier's threshold is the one that best separates
   mild DR from normal (balanced accuracy) on ``--val-n`` held-out synthetic images of the same mix
   (scores are reported relative to it: > 0 is DR). No real image or label enters training or sets a
   threshold. For reference, the same models are cross-validated on the real eyes themselves
   (stratified folds).
2. Vessel segmentation. A small U-Net learns the synthetic large-vessel masks (vessels of radius >= the
   simulator's large-vessel threshold, the definition that matches OCTA-500's manual "large vessel"
   labels) from synthetic images of both fields; Dice and clDice on every real eye with a mask.
3. ``<out>/differences.png``: where synthetic and real differ, per class (feature histograms and the
   classifier's score distributions).

The last printed line is one JSON object: ``balanced_accuracy`` (pooled, synthetic-only CNN), ``auc``,
``dice`` (mean over real eyes of both fields) and the per-field figures. Same seed, same numbers.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOVS = ("3mm", "6mm")
RESULTS_START, RESULTS_END = "<!-- sim2real:start -->", "<!-- sim2real:end -->"


def default_real_dir() -> Path:
    from svr_jax.realdata import default_octa500_dir

    return default_octa500_dir()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """[N, H, W] -> [N, H/f, W/f] by block means (the classifier's input resolution)."""
    n, h, w = images.shape
    h, w = h // factor * factor, w // factor * factor
    return images[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor).mean((2, 4)).astype(np.float32)


def in_chunks(fn, images: np.ndarray, size: int) -> np.ndarray:
    """``fn`` over [N, ...] in chunks of one fixed shape (the last one padded): one compilation."""
    import jax.numpy as jnp

    padded = np.concatenate([images, np.repeat(images[:1], -len(images) % size, 0)])
    return np.concatenate([np.asarray(fn(jnp.asarray(padded[i:i + size]))) for i in range(0, len(padded), size)])[: len(images)]


# --- data ------------------------------------------------------------------------------------------


# How the synthetic DR half is spread over mild, moderate, severe and PDR: weighted towards the early
# stages, which are the most common DR in clinics and the ones closest to normal (a classifier trained on
# advanced disease alone learns cues that most DR eyes do not show).
DR_STAGE_WEIGHTS = (0.4, 0.3, 0.15, 0.15)


def synthetic_set(fov: str, n: int, seed: int, *, variability: float, dr_fraction: float = 0.5, chunk: int = 16,
                  architecture: str | None = None) -> dict:
    """``n`` synthetic images of the preset of ``fov`` (``conf/fov/<fov>.yaml``): images, stages, DR
    labels (stage >= mild) and large-vessel masks. Half normal, the rest over mild .. PDR by
    ``DR_STAGE_WEIGHTS``; each sample's parameters drawn around the preset with ``svr_jax.variability``
    at ``variability`` (0: the preset itself)."""
    import jax
    import jax.numpy as jnp

    from svr_jax.presets import preset_params  # svr_jax/conf/fov/<fov>.yaml, as `svr export` uses it
    from svr_jax.batch import batched_simulator
    from svr_jax.pathology import PathologyConfig
    from svr_jax.simulate import sample_keys

    sim, params = preset_params(fov, architecture)  # architecture None: the preset's trees
    run = batched_simulator(sim, PathologyConfig("mixed", (1.0 - dr_fraction,) + tuple(dr_fraction * w for w in DR_STAGE_WEIGHTS)), float(variability))
    images, stages, masks = [], [], []
    for start in range(0, n, chunk):
        s = jax.device_get(run(sample_keys(seed, jnp.arange(start, start + chunk)), params))
        images.append(s.image)
        stages.append(s.lesions.stage)
        masks.append(s.masks["large_vessel"])
    stage = np.concatenate(stages)[:n]
    return dict(images=np.concatenate(images)[:n].astype(np.float32), dr=stage > 0, stage=stage,
                large_vessel=np.concatenate(masks)[:n])


def real_set(real_dir: Path, fov: str) -> dict:
    """Real DR and NORMAL eyes of one field (labels for scoring only) and every eye with a vessel mask."""
    from svr_jax import config as config_lib
    from svr_jax.realdata import load_folder

    field = config_lib.preset(fov).field
    labelled = load_folder(real_dir, scan_mm=field.fov_mm, disease=("NORMAL", "DR"), size_px=field.size_px)
    every = load_folder(real_dir, scan_mm=field.fov_mm, disease="ALL", size_px=field.size_px)
    return dict(images=labelled.images, dr=np.asarray([d == "DR" for d in labelled.diseases]),
                seg_images=every.images, large_vessel=every.large_vessel_masks)


# --- classification --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def classifier_batches(batch: int):
    """draw(key, (images, labels, weights)) -> a class-balanced, freshly augmented batch; samples of
    weight 0 (held-out folds) are never drawn. Cached per batch size so the train step compiles once."""
    import jax
    import jax.numpy as jnp

    from svr_jax import nets

    half = batch // 2

    def draw(key, data):
        images, labels, weights = data
        k_pos, k_neg, k_aug = jax.random.split(key, 3)
        n = labels.shape[0]
        p_pos, p_neg = weights * labels, weights * (1.0 - labels)
        idx = jnp.concatenate([jax.random.choice(k_pos, n, (half,), p=p_pos / jnp.sum(p_pos)),
                               jax.random.choice(k_neg, n, (half,), p=p_neg / jnp.sum(p_neg))])
        augmented = jax.vmap(lambda k, im: nets.normalise(nets.augment(k, im)))(jax.random.split(k_aug, batch), images[idx])
        return augmented[..., None], jnp.concatenate([jnp.ones(half), jnp.zeros(half)])

    return draw


def train_classifier(key, images: np.ndarray, labels: np.ndarray, *, steps: int, batch: int, train: np.ndarray | None = None):
    """Compact CNN on [N, h, w] images with 0/1 labels, trained on the samples where ``train`` is true
    (all by default)."""
    import jax
    import jax.numpy as jnp

    from svr_jax import nets

    weights = np.ones(len(labels)) if train is None else np.asarray(train, np.float32)
    data = (jnp.asarray(images), jnp.asarray(labels, jnp.float32), jnp.asarray(weights, jnp.float32))
    init_key, train_key = jax.random.split(key)
    return nets.train(train_key, nets.init_classifier(init_key), nets.classifier_loss, classifier_batches(batch), data, steps=steps)


@functools.lru_cache(maxsize=None)
def _classifier_apply():
    import jax
    import jax.numpy as jnp

    from svr_jax import nets

    def logits(p, x):  # [B, h, w]: the mean over the 8 orientations the training augmentation draws from
        x = jax.vmap(nets.normalise)(x)[..., None]
        views = [jnp.rot90(v, k, axes=(1, 2)) for v in (x, x[:, :, ::-1]) for k in range(4)]
        return jnp.mean(jnp.stack([nets.classifier_logits(p, v) for v in views]), 0)

    return jax.jit(logits)


def classifier_scores(params, images: np.ndarray) -> np.ndarray:
    """Logits of [N, h, w] images, averaged over flips and quarter turns (test-time augmentation: laterality
    and scan direction are not cues, and the mean is steadier than any one view)."""
    apply = _classifier_apply()
    return in_chunks(lambda x: apply(params, x), images, 32)


def scores_summary(labels: np.ndarray, scores: np.ndarray) -> dict:
    from svr_jax import metrics

    predicted = scores > 0
    return dict(balanced_accuracy=round(metrics.balanced_accuracy(labels, predicted), 4), auc=round(metrics.roc_auc(labels, scores), 4),
                confusion=metrics.confusion(labels, predicted), n_dr=int(labels.sum()), n_normal=int((~labels).sum()))


def statistics(images: np.ndarray, fov: str) -> np.ndarray:
    """The fixed feature vector of ``svr_jax.stats`` per image (the statistics the fit and realism use)."""
    from svr_jax import config as config_lib
    from svr_jax import stats
    from svr_jax.fit import real_summary

    per_image, _ = real_summary(images, config_lib.preset(fov))
    return np.asarray(stats.feature_vector(per_image))


def cross_validated(labels: np.ndarray, fit_and_score, *, k: int, seed: int) -> np.ndarray:
    """Held-out scores of every sample over stratified ``k`` folds (real-data reference)."""
    from svr_jax.metrics import stratified_folds

    scores = np.zeros(len(labels))
    for i, test in enumerate(stratified_folds(labels.astype(int), k, seed)):
        train = np.setdiff1d(np.arange(len(labels)), test)
        scores[test] = fit_and_score(i, train, test)
    return scores


# --- segmentation ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def segmenter_batches(per_set: int, crop: int):
    """draw(key, [(images, masks), ...]) -> ``per_set`` augmented random crops from each set."""
    import jax
    import jax.numpy as jnp

    from svr_jax import nets

    def crops(key, images, masks):
        n, h, w = images.shape
        k_idx, k_y, k_x, k_aug = jax.random.split(key, 4)
        idx = jax.random.randint(k_idx, (per_set,), 0, n)
        ys = jax.random.randint(k_y, (per_set,), 0, h - crop + 1)
        xs = jax.random.randint(k_x, (per_set,), 0, w - crop + 1)

        def one(k, i, y, x):
            image = jax.lax.dynamic_slice(images[i], (y, x), (crop, crop))
            mask = jax.lax.dynamic_slice(masks[i], (y, x), (crop, crop))
            image, mask = nets.augment(k, image, mask)
            return nets.normalise(image), mask

        return jax.vmap(one)(jax.random.split(k_aug, per_set), idx, ys, xs)

    def draw(key, sets):
        parts = [crops(k, *a) for k, a in zip(jax.random.split(key, len(sets)), sets)]
        return jnp.concatenate([p[0] for p in parts])[..., None], jnp.concatenate([p[1] for p in parts])

    return draw


def train_segmenter(key, sets: list[dict], *, steps: int, batch: int, crop: int):
    """U-Net on random crops of synthetic images and large-vessel masks, equally many from each set."""
    import jax
    import jax.numpy as jnp

    from svr_jax import nets

    data = [(jnp.asarray(s["images"]), jnp.asarray(s["large_vessel"], jnp.float32)) for s in sets]
    init_key, train_key = jax.random.split(key)
    draw = segmenter_batches(batch // len(sets), crop)
    return nets.train(train_key, nets.init_unet(init_key), nets.unet_loss, draw, data, steps=steps)


def segment(params, images: np.ndarray) -> np.ndarray:
    import jax

    from svr_jax import nets

    apply = jax.jit(lambda p, x: nets.unet_logits(p, jax.vmap(nets.normalise)(x)[..., None]) > 0)
    return in_chunks(lambda x: apply(params, x), images, 8)


# --- report ----------------------------------------------------------------------------------------

FEATURE_NAMES = {31: "vessel density (soft)", 32: "large-vessel density (soft)", 33: "FAZ area (soft, mm²)",
                 18: "spread of local std (20 µm)", 11: "spectrum band 7 (log power)"}


def plot_differences(path: Path, by_fov: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(FEATURE_NAMES.items()) + [(None, "CNN score (logit)")]
    fig, axes = plt.subplots(len(by_fov), len(columns), figsize=(3.2 * len(columns), 2.8 * len(by_fov)), squeeze=False)
    styles = dict(real_normal=("tab:blue", "-"), real_dr=("tab:red", "-"), syn_normal=("tab:blue", "--"), syn_dr=("tab:red", "--"))
    for row, (fov, d) in enumerate(by_fov.items()):
        for col, (index, name) in enumerate(columns):
            ax = axes[row, col]
            groups = dict(
                real_normal=(d["real_values"] if index is None else d["real_features"][:, index])[~d["real_dr"]],
                real_dr=(d["real_values"] if index is None else d["real_features"][:, index])[d["real_dr"]],
                syn_normal=(d["syn_values"] if index is None else d["syn_features"][:, index])[~d["syn_dr"]],
                syn_dr=(d["syn_values"] if index is None else d["syn_features"][:, index])[d["syn_dr"]],
            )
            everything = np.concatenate(list(groups.values()))
            bins = np.linspace(*np.percentile(everything, [1, 99]), 25)
            for label, values in groups.items():
                colour, line = styles[label]
                ax.hist(values, bins=bins, density=True, histtype="step", color=colour, linestyle=line, label=label.replace("_", " "))
            ax.set_title(f"{fov}: {name}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict) -> str:
    lines = ["| field | real eyes (DR / normal) | synthetic-only CNN: bal. acc. | AUC | synthetic-only features: bal. acc. | AUC "
             "| real CV CNN: bal. acc. | real CV features: bal. acc. | U-Net Dice | clDice |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for fov, r in list(result["by_fov"].items()) + [("pooled", result["pooled"])]:
        seg = result["segmentation"].get(fov, {})
        lines.append(
            f"| {fov} | {r['cnn']['n_dr']} / {r['cnn']['n_normal']} | {r['cnn']['balanced_accuracy']:.3f} | {r['cnn']['auc']:.3f} "
            f"| {r['features']['balanced_accuracy']:.3f} | {r['features']['auc']:.3f} "
            f"| {r['real_cv_cnn']['balanced_accuracy']:.3f} | {r['real_cv_features']['balanced_accuracy']:.3f} "
            f"| {seg.get('dice', float('nan')):.3f} | {seg.get('cldice', float('nan')):.3f} |"
        )
    return "\n".join(lines)


def update_results(text: str, command: str) -> None:
    """Replace the sim-to-real block of docs/results.md (never the README: it holds no run's figures)."""
    results = REPO / "docs" / "results.md"
    content = results.read_text()
    if RESULTS_START not in content or RESULTS_END not in content:
        raise SystemExit(f"docs/results.md has no {RESULTS_START} ... {RESULTS_END} block")
    head, rest = content.split(RESULTS_START, 1)
    _, tail = rest.split(RESULTS_END, 1)
    block = f"{RESULTS_START}\n`{command}` ({time.strftime('%Y-%m-%d')}):\n\n{text}\n{RESULTS_END}"
    results.write_text(head + block + tail)


# --- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=default_real_dir(), help="real data folder (labels.csv layout)")
    parser.add_argument("--fov", nargs="+", default=list(FOVS), choices=FOVS)
    parser.add_argument("--n", type=int, default=1024, help="synthetic images per field")
    parser.add_argument("--factor", type=int, default=4,
                        help="the classifier sees images block-averaged by this factor (3 mm: 40 µm pixels): the scale of "
                             "non-perfusion and FAZ changes, coarser than the capillary texture where synthetic and real differ most")
    parser.add_argument("--val-n", type=int, default=512, help="held-out synthetic images per field that set the classifiers' thresholds")
    parser.add_argument("--cls-steps", type=int, default=600)
    parser.add_argument("--cv-steps", type=int, default=200,
                        help="steps of each real-data reference CNN (its folds hold 60-100 eyes: 200 steps of 32 are ~70 passes)")
    parser.add_argument("--seg-steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--folds", type=int, default=3, help="folds of the real-data reference")
    parser.add_argument("--variability", type=float, default=None,
                        help="scale of per-sample parameter spread (0: the preset alone); default: that of svr generate/export "
                             "(svr_jax.variability.DEFAULT_VARIABILITY), the population the presets are fitted as (spread_ratio of benchmarks/realism.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architecture", choices=("colonisation", "branching"), default=None,
                        help="the trees' growth (GrowthConfig.architecture); default: the preset's")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "sim2real")
    parser.add_argument("--quick", action="store_true", help="128 images per field (64 held out), 100 steps each (50 for the real-data reference)")
    parser.add_argument("--results", action="store_true", help="rewrite the sim-to-real table of docs/results.md and docs/img/sim2real_differences.png")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.val_n, args.cls_steps, args.cv_steps, args.seg_steps = 128, 64, 100, 50, 100
    if not args.real.is_dir():
        print(f"sim2real: error: real data folder {str(args.real)!r} does not exist (--real DIR or $SVR_OCTA500)", file=sys.stderr)
        return 2
    import jax

    from svr_jax import metrics
    from svr_jax.runtime import enable_compilation_cache
    from svr_jax.variability import default_variability

    if args.variability is None:
        args.variability = default_variability()

    enable_compilation_cache()
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    by_fov, plots, synthetic_sets, reals, pooled = {}, {}, {}, {}, dict(labels=[], cnn=[], features=[], cv_cnn=[], cv_features=[])
    for f_index, fov in enumerate(args.fov):
        t0 = time.perf_counter()
        syn = synthetic_set(fov, args.n, seed=10_000_019 + args.seed, variability=args.variability, architecture=args.architecture)
        real = real_set(args.real, fov)
        synthetic_sets[fov] = syn
        log(f"{fov}: {args.n} synthetic ({int(syn['dr'].sum())} DR), {len(real['dr'])} real ({int(real['dr'].sum())} DR), "
            f"{time.perf_counter() - t0:.0f} s")
        syn_small, real_small = downsample(syn["images"], args.factor), downsample(real["images"], args.factor)
        k_cls, k_cv = jax.random.split(jax.random.fold_in(key, f_index))
        params = train_classifier(k_cls, syn_small, syn["dr"], steps=args.cls_steps, batch=args.batch)
        real_cnn = classifier_scores(params, real_small)
        syn_cnn = classifier_scores(params, syn_small)
        syn_features, real_features = statistics(syn["images"], fov), statistics(real["images"], fov)
        linear = metrics.fit_logistic(syn_features, syn["dr"])
        # Operating points, set on held-out synthetic images (other seeds, the same stage mix); real labels
        # never choose them. The threshold that best separates the earliest stage (mild) from normal: every
        # later stage scores higher, and, unlike the best cut over the whole mix, it does not depend on how
        # DR_STAGE_WEIGHTS share the DR half out (a mix heavy in advanced disease pushes that cut up).
        val = synthetic_set(fov, args.val_n, seed=20_000_033 + args.seed, variability=args.variability, architecture=args.architecture)
        val_cnn, val_linear = classifier_scores(params, downsample(val["images"], args.factor)), linear(statistics(val["images"], fov))
        earliest = val["stage"] <= 1
        threshold = dict(cnn=metrics.balanced_threshold(val["dr"][earliest], val_cnn[earliest]),
                         features=metrics.balanced_threshold(val["dr"][earliest], val_linear[earliest]))
        real_cnn, real_linear = real_cnn - threshold["cnn"], linear(real_features) - threshold["features"]
        syn_cnn = syn_cnn - threshold["cnn"]

        def cv_cnn(i, train, test):
            in_train = np.isin(np.arange(len(real["dr"])), train)
            p = train_classifier(jax.random.fold_in(k_cv, i), real_small, real["dr"], steps=args.cv_steps, batch=args.batch, train=in_train)
            return classifier_scores(p, real_small[test])

        cv_cnn_scores = cross_validated(real["dr"], cv_cnn, k=args.folds, seed=args.seed)
        cv_linear = cross_validated(real["dr"], lambda i, tr, te: metrics.fit_logistic(real_features[tr], real["dr"][tr])(real_features[te]),
                                    k=args.folds, seed=args.seed)
        by_fov[fov] = dict(
            cnn=scores_summary(real["dr"], real_cnn), features=scores_summary(real["dr"], real_linear),
            real_cv_cnn=scores_summary(real["dr"], cv_cnn_scores), real_cv_features=scores_summary(real["dr"], cv_linear),
            synthetic_train_balanced_accuracy=round(metrics.balanced_accuracy(syn["dr"], syn_cnn > 0), 4),
            synthetic_validation_balanced_accuracy=round(metrics.balanced_accuracy(val["dr"], val_cnn > threshold["cnn"]), 4),
            # null for a stage the validation draw lacks (possible in --quick's 64 images): valid JSON, not NaN.
            synthetic_validation_detected_by_stage=[round(float(np.mean(val_cnn[val["stage"] == k] > threshold["cnn"])), 3)
                                                    if np.any(val["stage"] == k) else None
                                                    for k in range(len(DR_STAGE_WEIGHTS) + 1)],
            thresholds={k: round(v, 4) for k, v in threshold.items()},
            seconds=round(time.perf_counter() - t0, 1),
        )
        for name, values in (("labels", real["dr"]), ("cnn", real_cnn), ("features", real_linear), ("cv_cnn", cv_cnn_scores), ("cv_features", cv_linear)):
            pooled[name].append(values)
        plots[fov] = dict(real_features=real_features, syn_features=syn_features, real_dr=real["dr"], syn_dr=syn["dr"],
                          syn_stage=syn["stage"], real_values=real_cnn, syn_values=syn_cnn, real_linear=real_linear)
        reals[fov] = real
        log(f"{fov}: CNN {by_fov[fov]['cnn']['balanced_accuracy']:.3f} (AUC {by_fov[fov]['cnn']['auc']:.3f}), features "
            f"{by_fov[fov]['features']['balanced_accuracy']:.3f}; real CV CNN {by_fov[fov]['real_cv_cnn']['balanced_accuracy']:.3f}; "
            f"{by_fov[fov]['seconds']:.0f} s")
    labels = np.concatenate(pooled["labels"])
    pooled_summary = {name: scores_summary(labels, np.concatenate(pooled[key_])) for name, key_ in
                      (("cnn", "cnn"), ("features", "features"), ("real_cv_cnn", "cv_cnn"), ("real_cv_features", "cv_features"))}

    # Segmentation: one U-Net on synthetic crops of every field, Dice / clDice on each real eye with a mask.
    t0 = time.perf_counter()
    seg_params = train_segmenter(jax.random.fold_in(key, 99), list(synthetic_sets.values()), steps=args.seg_steps, batch=8, crop=128)
    segmentation, all_dice, all_cldice = {}, [], []
    for fov in args.fov:
        real = reals[fov]
        if real["large_vessel"] is None:
            continue
        predicted = segment(seg_params, real["seg_images"])
        dice = [metrics.dice(p, t) for p, t in zip(predicted, real["large_vessel"])]
        cl = [metrics.cldice(p, t) for p, t in zip(predicted, real["large_vessel"])]
        all_dice += dice
        all_cldice += cl
        segmentation[fov] = dict(dice=round(float(np.mean(dice)), 4), cldice=round(float(np.mean(cl)), 4), eyes=len(dice),
                                 predicted_fraction=round(float(predicted.mean()), 4), real_fraction=round(float(real["large_vessel"].mean()), 4))
        log(f"{fov}: U-Net Dice {segmentation[fov]['dice']:.3f}, clDice {segmentation[fov]['cldice']:.3f} on {len(dice)} real eyes")
    segmentation["pooled"] = dict(dice=round(float(np.mean(all_dice)), 4), cldice=round(float(np.mean(all_cldice)), 4),
                                  eyes=len(all_dice)) if all_dice else {}
    log(f"segmentation: {time.perf_counter() - t0:.0f} s")

    plot_differences(args.out / "differences.png", plots)
    result = dict(
        balanced_accuracy=pooled_summary["cnn"]["balanced_accuracy"], auc=pooled_summary["cnn"]["auc"],
        dice=segmentation["pooled"].get("dice"), by_fov=by_fov, pooled=pooled_summary, segmentation=segmentation,
        n_synthetic=args.n, n_validation=args.val_n, variability=args.variability, factor=args.factor, cls_steps=args.cls_steps, cv_steps=args.cv_steps, seg_steps=args.seg_steps, seed=args.seed, quick=args.quick, architecture=args.architecture,
        seconds=round(time.perf_counter() - t_start, 1),
    )
    (args.out / "table.md").write_text(table(result) + "\n")
    # Per-eye scores and features, for analysis (no image; the real labels are OCTA-500's).
    np.savez(args.out / "scores.npz", **{f"{fov}_{name}": value for fov, d in plots.items() for name, value in d.items()})
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.results:
        command = "python benchmarks/sim2real.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).replace(" --results", "")
        update_results(table(result), command.strip())
        shutil.copyfile(args.out / "differences.png", REPO / "docs" / "img" / "sim2real_differences.png")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
