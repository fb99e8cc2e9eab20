"""Small networks for judging synthetic data: a compact CNN classifier and a small U-Net, in plain JAX.

Trained on synthetic images only and scored on real scans by ``benchmarks/sim2real.py``. Parameters are
pytrees of arrays; functions are pure and key-first; callers jit. Images are NHWC float32.

``augment`` models acquisition variability between devices and sessions (gain, gamma, blur from
defocus or motion, speckle and shot noise, uneven signal across the field, orientation); ``normalise``
maps every image, real or synthetic, by its own percentiles, so no statistic of the real set ever enters
training.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

_DIMS = ("NHWC", "HWIO", "NHWC")


def normalise(image: jax.Array) -> jax.Array:
    """[H, W] -> zero median, unit 1-99 percentile range, computed on the image itself."""
    lo, mid, hi = jnp.percentile(image, jnp.asarray([1.0, 50.0, 99.0]))
    return (image - mid) / (hi - lo + 1e-3)


def _gaussian_blur(image: jax.Array, sigma_px: jax.Array, radius: int = 3) -> jax.Array:
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    kernel = jnp.exp(-0.5 * (offsets / jnp.maximum(sigma_px, 1e-3)) ** 2)
    kernel = kernel / jnp.sum(kernel)
    padded = jnp.pad(image, radius, mode="reflect")
    rows = jax.vmap(lambda r: jnp.convolve(r, kernel, mode="valid"))(padded)
    return jax.vmap(lambda c: jnp.convolve(c, kernel, mode="valid"), in_axes=1, out_axes=1)(rows)


def augment(key: jax.Array, image: jax.Array, mask: jax.Array | None = None):
    """One random acquisition of a square [H, W] image in [0, 1] (and the same flips/rotation of ``mask``).

    Orientation (flips, quarter turns: laterality and scan direction are not cues), gain and offset,
    gamma, blur up to 1.2 px, multiplicative speckle and additive noise, and a smooth gain field across
    the image (``shading``).
    """
    keys = jax.random.split(key, 9)
    flip_h, flip_v = jax.random.bernoulli(keys[0]), jax.random.bernoulli(keys[1])
    turns = jax.random.randint(keys[2], (), 0, 4)

    def orient(x):
        x = jnp.where(flip_h, x[:, ::-1], x)
        x = jnp.where(flip_v, x[::-1, :], x)
        return jax.lax.switch(turns, [lambda a, k=k: jnp.rot90(a, k) for k in range(4)], x)

    x = orient(image)
    gamma = jnp.exp(jax.random.uniform(keys[3], (), minval=-0.4, maxval=0.4))
    x = jnp.clip(x, 0.0, 1.0) ** gamma
    x = _gaussian_blur(x, jax.random.uniform(keys[4], (), minval=0.0, maxval=1.2))
    speckle = jax.random.uniform(keys[5], (), minval=0.0, maxval=0.25)
    x = x * (1.0 + speckle * jax.random.normal(keys[6], x.shape))
    x = x + jax.random.uniform(keys[7], (), minval=0.0, maxval=0.05) * jax.random.normal(keys[8], x.shape)
    gain = jnp.exp(jax.random.uniform(jax.random.fold_in(key, 1), (), minval=-0.3, maxval=0.3))
    x = gain * x + jax.random.uniform(jax.random.fold_in(key, 2), (), minval=-0.1, maxval=0.1)
    x = x * shading(jax.random.fold_in(key, 3), x.shape)
    return x if mask is None else (x, orient(mask))


def shading(key: jax.Array, shape: tuple[int, int], max_log_gain: float = 0.2, grid: int = 4) -> jax.Array:
    """A smooth multiplicative gain field over an image: exp(a * f), f a ``grid`` x ``grid`` Gaussian field
    upsampled (cubic) to ``shape`` and scaled to unit standard deviation, a ~ U(0, ``max_log_gain``).

    Real en-face scans are unevenly bright across the field (media opacity, pupil vignetting, defocus
    and projection artefacts vary from place to place); a classifier that never saw this reads a darker
    region as capillary dropout. 0.2 in log: a wider field shifts the real eyes' scores as a whole
    (docs/experiments/sim2real.md).
    """
    k_field, k_amp = jax.random.split(key)
    field = jax.image.resize(jax.random.normal(k_field, (grid, grid)), shape, "cubic")
    field = field / (jnp.std(field) + 1e-6)
    return jnp.exp(jax.random.uniform(k_amp, (), minval=0.0, maxval=max_log_gain) * field)


def _conv_init(key: jax.Array, c_in: int, c_out: int, size: int = 3) -> dict:
    w = jax.random.normal(key, (size, size, c_in, c_out)) * np.sqrt(2.0 / (size * size * c_in))
    return dict(w=w, b=jnp.zeros(c_out))


def _conv(layer: dict, x: jax.Array, stride: int = 1) -> jax.Array:
    return jax.lax.conv_general_dilated(x, layer["w"], (stride, stride), "SAME", dimension_numbers=_DIMS) + layer["b"]


def _pool(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max((2, 4))


# --- classifier ------------------------------------------------------------------------------------


def init_classifier(key: jax.Array, channels: tuple[int, ...] = (16, 32, 64, 64)) -> dict:
    """Conv-ReLU-maxpool stages, then mean and max pooling over the field and a linear read-out."""
    keys = jax.random.split(key, len(channels) + 1)
    convs, c_in = [], 1
    for k, c in zip(keys[:-1], channels):
        convs.append(_conv_init(k, c_in, c))
        c_in = c
    head = dict(w=jax.random.normal(keys[-1], (2 * c_in,)) * 0.01, b=jnp.zeros(()))
    return dict(convs=convs, head=head)


def classifier_logits(params: dict, images: jax.Array) -> jax.Array:
    """[B, H, W, 1] -> [B] logits (> 0: diseased)."""
    x = images
    for layer in params["convs"]:
        x = _pool(jax.nn.relu(_conv(layer, x)))
    pooled = jnp.concatenate([x.mean((1, 2)), x.max((1, 2))], -1)
    return pooled @ params["head"]["w"] + params["head"]["b"]


def classifier_loss(params: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
    z = classifier_logits(params, images)
    return jnp.mean(jnp.logaddexp(0.0, z) - labels * z)


# --- U-Net -----------------------------------------------------------------------------------------


def init_unet(key: jax.Array, channels: tuple[int, ...] = (16, 32, 64)) -> dict:
    """Encoder of two 3x3 convs per level with max-pooling; decoder with nearest upsampling and skips."""
    keys = iter(jax.random.split(key, 4 * len(channels) + 1))
    down, c_in = [], 1
    for c in channels:
        down.append([_conv_init(next(keys), c_in, c), _conv_init(next(keys), c, c)])
        c_in = c
    up = []
    for c in reversed(channels[:-1]):
        up.append([_conv_init(next(keys), c_in + c, c), _conv_init(next(keys), c, c)])
        c_in = c
    return dict(down=down, up=up, out=_conv_init(next(keys), c_in, 1, size=1))


def unet_logits(params: dict, images: jax.Array) -> jax.Array:
    """[B, H, W, 1] -> [B, H, W] logits (> 0: vessel); H and W divisible by 2^(levels-1)."""
    x, skips = images, []
    for i, (a, b) in enumerate(params["down"]):
        if i:
            x = _pool(x)
        x = jax.nn.relu(_conv(b, jax.nn.relu(_conv(a, x))))
        skips.append(x)
    for (a, b), skip in zip(params["up"], reversed(skips[:-1])):
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        x = jnp.concatenate([x, skip], -1)
        x = jax.nn.relu(_conv(b, jax.nn.relu(_conv(a, x))))
    return _conv(params["out"], x)[..., 0]


def unet_loss(params: dict, images: jax.Array, masks: jax.Array) -> jax.Array:
    """Pixel cross-entropy plus soft Dice (vessels are a few per cent of the pixels)."""
    z = unet_logits(params, images)
    bce = jnp.mean(jnp.logaddexp(0.0, z) - masks * z)
    p = jax.nn.sigmoid(z)
    soft_dice = 2.0 * jnp.sum(p * masks, (1, 2)) / (jnp.sum(p, (1, 2)) + jnp.sum(masks, (1, 2)) + 1.0)
    return bce + jnp.mean(1.0 - soft_dice)


# --- training --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _optimizer(learning_rate: float, steps: int):
    import optax

    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))


@functools.partial(jax.jit, static_argnames=("loss", "draw", "learning_rate", "steps"))
def _step(params, state, key, data, *, loss, draw, learning_rate, steps):
    import optax

    inputs, targets = draw(key, data)
    value, grads = jax.value_and_grad(loss)(params, inputs, targets)
    updates, state = _optimizer(learning_rate, steps).update(grads, state, params)
    return optax.apply_updates(params, updates), state, value


def train(key: jax.Array, params, loss: Callable, draw: Callable, data, *, steps: int, learning_rate: float = 2e-3,
          on_step: Callable[[int, float], None] = lambda i, v: None):
    """Adam (cosine-decayed) for ``steps`` steps; ``draw(key, data)`` makes one (inputs, targets) batch on
    the device. ``loss`` and ``draw`` are static (one compilation per pair and data shape, reused by
    later calls, e.g. cross-validation folds); ``data`` is an argument, never a baked-in constant.
    Deterministic for a given key."""
    state = _optimizer(learning_rate, steps).init(params)
    for i, k in enumerate(jax.random.split(key, steps)):
        params, state, value = _step(params, state, k, data, loss=loss, draw=draw, learning_rate=learning_rate, steps=steps)
        if i % 50 == 0 or i == steps - 1:
            on_step(i, float(value))
    return params
