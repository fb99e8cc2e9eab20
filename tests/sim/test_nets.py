"""The small networks of the sim-to-real benchmark: shapes, augmentation geometry, and that they learn."""

import jax
import jax.numpy as jnp
import numpy as np

from svr_jax import nets


def test_normalise_ignores_gain_and_offset():
    image = jax.random.uniform(jax.random.key(0), (32, 32))
    assert np.allclose(nets.normalise(image), nets.normalise(3.0 * image + 0.2), atol=2e-3)  # up to the 1e-3 floor


def test_augment_moves_mask_with_image():
    image = jnp.zeros((16, 16)).at[2:5, 10:14].set(1.0)
    for seed in range(8):
        augmented, mask = nets.augment(jax.random.key(seed), image, image)
        inside = np.asarray(mask) > 0
        assert mask.shape == (16, 16) and inside.sum() == image.sum()
        a = np.asarray(augmented)
        assert a[inside].mean() > a[~inside].mean() + 0.3  # the bright block sits on the (moved) mask


def test_shapes():
    x = jnp.zeros((2, 32, 32, 1))
    assert nets.classifier_logits(nets.init_classifier(jax.random.key(0)), x).shape == (2,)
    assert nets.unet_logits(nets.init_unet(jax.random.key(0)), x).shape == (2, 32, 32)


def _toy(key):
    """Images with a bright bar (label 1: horizontal, 0: vertical) on noise; mask = the bar."""
    k_lab, k_pos, k_noise = jax.random.split(key, 3)
    labels = jax.random.bernoulli(k_lab, 0.5, (8,)).astype(jnp.float32)
    pos = jax.random.randint(k_pos, (8,), 4, 20)
    grid = jnp.arange(24)
    horizontal = (jnp.abs(grid[None, :, None] - pos[:, None, None]) < 2) & jnp.ones((1, 1, 24), bool)
    vertical = jnp.swapaxes(horizontal, 1, 2)
    mask = jnp.where(labels[:, None, None] > 0, horizontal, vertical).astype(jnp.float32)
    images = mask + 0.3 * jax.random.normal(k_noise, mask.shape)
    return images, labels, mask


def _draw_labels(key, data):
    images, labels, _ = _toy(key)
    return images[..., None], labels


def _draw_masks(key, data):
    images, _, mask = _toy(key)
    return images[..., None], mask


def test_classifier_and_unet_learn_a_toy_task():
    images, labels, mask = _toy(jax.random.key(123))
    params = nets.train(jax.random.key(0), nets.init_classifier(jax.random.key(1), (8, 16)), nets.classifier_loss, _draw_labels, None, steps=150)
    accuracy = np.mean((np.asarray(nets.classifier_logits(params, images[..., None])) > 0) == (np.asarray(labels) > 0))
    assert accuracy >= 0.85
    params = nets.train(jax.random.key(2), nets.init_unet(jax.random.key(3), (8, 16)), nets.unet_loss, _draw_masks, None, steps=150)
    from svr_jax.metrics import dice

    assert dice(np.asarray(nets.unet_logits(params, images[..., None])) > 0, np.asarray(mask) > 0) > 0.8


def test_shading_is_a_smooth_bounded_gain_field():
    spreads = []
    for seed in range(16):
        log_gain = np.log(np.asarray(nets.shading(jax.random.key(seed), (64, 48), max_log_gain=0.2)))
        assert log_gain.shape == (64, 48)
        assert log_gain.std() <= 0.2 + 1e-4  # unit-std field times an amplitude <= 0.2
        # smooth: neighbouring pixels differ by a small fraction of the field's spread
        assert np.abs(np.diff(log_gain, axis=0)).mean() < 0.2 * log_gain.std() + 1e-6
        spreads.append(log_gain.std())
    assert np.max(spreads) > 0.1 and np.min(spreads) < np.max(spreads) / 2  # the amplitude varies per draw
