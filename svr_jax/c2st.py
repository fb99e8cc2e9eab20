"""Classifier two-sample tests (C2ST): can a classifier tell real eyes from synthetic ones?

A C2ST's figure is the cross-validated balanced accuracy of a classifier trained to separate the two
sets: 0.5 = indistinguishable to that classifier, 1.0 = always told apart. A weak classifier passes
anything, so each test here is built to win:

* ``feature_c2st``: two scikit-learn classifiers over a feature table, L2 logistic regression on
  standardised features (linear) and histogram gradient boosting (non-linear, no scaling needed),
  stratified k-fold; the figure is the better of the two (both are reported).
* ``cnn_c2st``: a small CNN (plain JAX) on the 8-bit images themselves, trained on each training fold
  until it fits that fold (``target_train_accuracy``) or ``max_steps``; its training accuracy is
  reported beside the held-out one, so an under-trained discriminator shows. Augmentations are only
  those real scans also have (left-right and up-down flips, a small random crop); no normalisation of
  intensity or contrast, which would erase part of the difference being measured.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def feature_c2st(features: np.ndarray, labels: np.ndarray, *, k: int = 5, seed: int = 0) -> dict[str, float]:
    """[N, F] features, [N] 0/1 labels -> {"logistic", "boosting", "c2st" (the larger)}: held-out
    balanced accuracy over stratified ``k`` folds."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    features = np.nan_to_num(np.asarray(features, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    folds = StratifiedKFold(k, shuffle=True, random_state=seed)
    classifiers = dict(
        logistic=make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)),
        boosting=HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, min_samples_leaf=5, random_state=seed),
    )
    # One thread: the tables are tiny (~100 x 100), and OpenMP's spinning threads on a busy machine made
    # a boosting fit take minutes instead of a second.
    with threadpool_limits(1):
        out = {name: float(np.mean(cross_val_score(model, features, labels, cv=folds, scoring="balanced_accuracy")))
               for name, model in classifiers.items()}
    out["c2st"] = max(out.values())
    return out


def standardised_offsets(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """[F] (synthetic mean - real mean) / real sd, per feature (a floor keeps constant features finite)."""
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    sd = real.std(0) + 1e-3 * np.abs(real.mean(0)) + 1e-9
    return (synthetic.mean(0) - real.mean(0)) / sd


@dataclasses.dataclass(frozen=True)
class CnnSettings:
    channels: tuple[int, ...] = (8, 16, 32, 64)
    batch: int = 16
    learning_rate: float = 1e-3
    max_steps: int = 600
    check_every: int = 25  # steps between checks of the training-fold accuracy
    target_train_accuracy: float = 0.98
    crop_fraction: float = 0.9  # side of the random (training) and central (evaluation) crop


def _init(key, channels):
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(key, len(channels) + 1)
    convs, c_in = [], 1
    for sub, c in zip(keys[:-1], channels):
        convs.append(dict(w=jax.random.normal(sub, (3, 3, c_in, c)) * np.sqrt(2.0 / (9 * c_in)), b=jnp.zeros(c)))
        c_in = c
    return dict(convs=convs, head=dict(w=jax.random.normal(keys[-1], (3 * c_in,)) * 0.01, b=jnp.zeros(())))


def cnn_logits(params: dict, images):
    """[B, H, W, 1] -> [B] logits (> 0: synthetic). Conv-ReLU-maxpool stages, the first convolution with
    stride 2 on the full-resolution image (it sees every pixel: pixel-scale texture is not averaged away
    first, and the rest runs at a sixteenth of the pixels); mean, max and standard deviation pooling over
    the field; a linear read-out."""
    import jax
    import jax.numpy as jnp

    x = images - 0.5
    for i, layer in enumerate(params["convs"]):
        stride = 1 if i else 2
        x = jax.lax.conv_general_dilated(x, layer["w"], (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + layer["b"])
        n, h, w, c = x.shape
        if min(h, w) >= 2:
            x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max((2, 4))
    pooled = jnp.concatenate([x.mean((1, 2)), x.max((1, 2)), x.std((1, 2))], -1)
    return pooled @ params["head"]["w"] + params["head"]["b"]


def _augment(rng: np.random.Generator, images: np.ndarray, crop_px: int) -> np.ndarray:
    """Random flips (both axes) and a random crop of ``crop_px``: variation real scans also have."""
    n, side = len(images), images.shape[1]
    out = np.empty((n, crop_px, crop_px), images.dtype)
    for i in range(n):
        y, x = rng.integers(0, side - crop_px + 1, 2)
        patch = images[i, y : y + crop_px, x : x + crop_px]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        out[i] = patch
    return out


def _centre(images: np.ndarray, crop_px: int) -> np.ndarray:
    start = (images.shape[1] - crop_px) // 2
    return images[:, start : start + crop_px, start : start + crop_px]


def cnn_c2st(images: np.ndarray, labels: np.ndarray, *, k: int = 3, seed: int = 0,
             settings: CnnSettings = CnnSettings(), progress: bool = False) -> dict[str, float]:
    """[N, H, W] images in [0, 1] (square), [N] 0/1 labels -> {"c2st": held-out balanced accuracy,
    "train_accuracy": mean over folds of the final training-fold accuracy (unaugmented centre crops),
    "steps": mean steps trained}."""
    import jax
    import jax.numpy as jnp
    import optax
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).astype(np.int64)
    crop_px = int(round(settings.crop_fraction * images.shape[1]))
    optimizer = optax.adam(settings.learning_rate)

    def loss(params, x, y):
        z = cnn_logits(params, x)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    predict = jax.jit(cnn_logits)

    def scores(params, x):
        return np.concatenate([np.asarray(predict(params, jnp.asarray(x[i : i + 32, ..., None]))) for i in range(0, len(x), 32)])

    rng = np.random.default_rng(seed)
    predictions = np.zeros(len(labels), np.int64)
    train_accuracy, steps_done = [], []
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    for fold, (train, test) in enumerate(folds):
        params = _init(jax.random.key(seed * 1000 + fold), settings.channels)
        state = optimizer.init(params)
        train_centre = _centre(images[train], crop_px)
        done, accuracy = 0, 0.0
        while done < settings.max_steps:
            for _ in range(settings.check_every):
                idx = rng.choice(train, settings.batch, replace=False)
                x = _augment(rng, images[idx], crop_px)[..., None]
                params, state = step(params, state, jnp.asarray(x), jnp.asarray(labels[idx], jnp.float32))
            done += settings.check_every
            accuracy = balanced_accuracy_score(labels[train], scores(params, train_centre) > 0)
            if accuracy >= settings.target_train_accuracy:
                break
        train_accuracy.append(accuracy)
        if progress:
            print(f"cnn fold {fold + 1}/{k}: {done} steps, training-fold accuracy {accuracy:.3f}", flush=True)
        steps_done.append(done)
        predictions[test] = scores(params, _centre(images[test], crop_px)) > 0
    return dict(c2st=float(balanced_accuracy_score(labels, predictions)), train_accuracy=float(np.mean(train_accuracy)),
                steps=float(np.mean(steps_done)))
