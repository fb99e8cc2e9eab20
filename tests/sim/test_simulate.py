"""Properties of the whole pipeline: determinism, vmap == loop, jit == no-jit, finite gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import svr_jax as svr
from svr_jax.simulate import fits_windows


@pytest.fixture(scope="module")
def simulate_jit(small_cfg):
    return jax.jit(lambda key, params: svr.simulate(key, params, small_cfg))


def test_same_key_bit_identical(simulate_jit, small_params):
    key = svr.sample_keys(7, jnp.arange(3))[2]
    a = simulate_jit(key, small_params)
    b = simulate_jit(key, small_params)
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    for name in svr.MASK_NAMES:
        np.testing.assert_array_equal(np.asarray(a.masks[name]), np.asarray(b.masks[name]))
    other = simulate_jit(svr.sample_keys(7, jnp.arange(3))[1], small_params)
    assert not np.array_equal(np.asarray(a.image), np.asarray(other.image))


def test_sample_keys_independent_of_batch_layout():
    """Sample i's key depends only on (seed, i), not on which batch or position it is in."""
    whole = jax.random.key_data(svr.sample_keys(3, jnp.arange(10)))
    part = jax.random.key_data(svr.sample_keys(3, jnp.arange(6, 10)))
    np.testing.assert_array_equal(whole[6:], part)


def test_vmap_equals_loop(small_cfg, small_params, simulate_jit):
    keys = svr.sample_keys(0, jnp.arange(4))
    batched = jax.jit(lambda k, p: svr.simulate_batch(k, p, small_cfg))(keys, small_params)
    for i in range(4):
        single = simulate_jit(keys[i], small_params)
        np.testing.assert_allclose(np.asarray(batched.image[i]), np.asarray(single.image), atol=1e-5)
        np.testing.assert_array_equal(np.asarray(batched.masks["vessel"][i]), np.asarray(single.masks["vessel"]))


def test_jit_equals_no_jit(tiny_cfg, small_params):
    key = jax.random.key(11)
    fast = jax.jit(lambda k, p: svr.simulate(k, p, tiny_cfg))(key, small_params)
    with jax.disable_jit():
        slow = svr.simulate(key, small_params, tiny_cfg)
    np.testing.assert_allclose(np.asarray(fast.image), np.asarray(slow.image), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(fast.masks["vessel"]), np.asarray(slow.masks["vessel"]))


def test_fast_renderer_matches_dense_on_a_real_graph(tiny_cfg, small_params):
    """The whole graph of a sample, rendered by the windowed path and by the dense oracle."""
    from svr_jax.render import render_dense

    anatomy = jax.jit(lambda k: svr.grow(k, small_params, tiny_cfg))(jax.random.key(5))
    fast = jax.jit(lambda g: svr.render_signal(g, tiny_cfg, small_params))(anatomy.graph)
    dense = jax.jit(lambda g: svr.render_signal(g, tiny_cfg, small_params, renderer=render_dense))(anatomy.graph)
    for f, d in zip(fast, dense):
        np.testing.assert_allclose(np.asarray(f), np.asarray(d), rtol=1e-4, atol=1e-4)
    assert float(jnp.sum(fast[2][..., :2] > 0)) > 20  # arteries and veins were drawn


def _bounded_params(params, corner: str):
    """Every parameter at the low or high end of its plausible range."""
    scale = 0.6 if corner == "low" else 1.5
    return jax.tree.map(lambda x: x * scale, params)


@pytest.fixture(scope="module")
def image_stat_grad(small_cfg):
    keys = svr.sample_keys(1, jnp.arange(2))

    def loss(p):
        batch = svr.simulate_batch(keys, p, small_cfg)
        return jnp.mean(batch.image) + jnp.std(batch.image)

    return jax.jit(jax.grad(loss))


@pytest.mark.parametrize("corner", ["default", "low", "high"])
def test_gradients_finite_over_parameter_box(small_params, image_stat_grad, corner):
    params = small_params if corner == "default" else _bounded_params(small_params, corner)
    grads = image_stat_grad(params)
    # Healthy samples: the structure and appearance parameters (pathology ones act only on disease).
    leaves = jax.tree_util.tree_leaves_with_path(dict(vessels=grads.vessels, appearance=grads.appearance))
    for path, g in leaves:
        assert np.isfinite(np.asarray(g)).all(), f"non-finite gradient at {jax.tree_util.keystr(path)}"
    nonzero = [jax.tree_util.keystr(p) for p, g in leaves if abs(float(g)) > 0]
    # The image depends on appearance and structure alike: most parameters must carry gradient.
    assert len(nonzero) >= 0.7 * len(leaves), nonzero
    for must in ("['appearance'].gain", "['appearance'].psf_sigma_um", "['vessels'].capillary_radius_um", "['vessels'].root_radius_um"):
        assert must in nonzero


@pytest.mark.parametrize("preset", ["3mm", "6mm"])
def test_segments_fit_their_windows(preset):
    """The static window bound holds for all but freak segments (which are dropped, not clipped)."""
    cfg = svr.preset(preset)
    params = svr.default_params(cfg)
    keys = svr.sample_keys(0, jnp.arange(8))

    def check(key):
        graph = svr.grow(key, params, cfg, drop_oversized=False).graph
        return jnp.sum(graph.valid & ~fits_windows(graph, cfg)), graph.capacity, jnp.sum(graph.valid)

    dropped, capacity, valid = jax.jit(jax.vmap(check))(keys)
    assert int(jnp.sum(dropped)) <= 1e-4 * int(capacity[0]) * len(keys)
    assert int(jnp.min(valid)) >= 10_000  # >= 10k segments per image
