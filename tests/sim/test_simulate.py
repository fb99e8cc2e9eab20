"""Properties of the whole pipeline: determinism, vmap == loop, jit == no-jit, finite gradients."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import svr_jax as svr
from svr_jax import growth
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


def test_vmap_equals_loop(small_batch, small_params, simulate_jit):
    keys = svr.sample_keys(0, jnp.arange(4))
    batched = small_batch("normal", small_params, seed=0)  # the exporters' jit(vmap(simulate)), keys 0 .. 47
    for i in range(4):
        single = simulate_jit(keys[i], small_params)
        np.testing.assert_allclose(np.asarray(batched.image[i]), np.asarray(single.image), atol=1e-5)
        np.testing.assert_array_equal(np.asarray(batched.masks["vessel"][i]), np.asarray(single.masks["vessel"]))


# Eager execution compiles every primitive on its own: over a minute even at 48 px. The stages' own
# jit == eager checks stay in `make test` (colonisation growth, the pathology operators).
@pytest.mark.slow
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


# The fit's bounds of the tree-shape parameters: a lopsided split keeps the trunk nearly as thick as its
# parent, the case the windows of later generations must still hold.
LOPSIDED = dict(branch_ratio=0.3, side_length_exponent=3.0, root_radius_um=36.0)
# And the capillary meshes at the largest foveal displacement: stretched most next to the FAZ.
DISPLACED = dict(foveal_displacement=growth.MAX_FOVEAL_DISPLACEMENT)


@functools.lru_cache(maxsize=None)
def window_check(preset: str):
    """jit(vmap) of (key, params) -> (dropped, capacity, valid): one compilation per preset for all the
    parameter sets below (they are traced values)."""
    cfg = svr.preset(preset)

    def check(key, params):
        graph = svr.grow(key, params, cfg, drop_oversized=False).graph
        return jnp.sum(graph.valid & ~fits_windows(graph, cfg)), graph.capacity, jnp.sum(graph.valid)

    return jax.jit(jax.vmap(check, in_axes=(0, None)))


@pytest.mark.parametrize("preset", ["3mm", "6mm"])
@pytest.mark.parametrize("vessels", [{}, LOPSIDED, DISPLACED], ids=["default", "lopsided", "displaced"])
def test_segments_fit_their_windows(preset, vessels):
    """The static window bound holds for all but freak segments (which are dropped, not clipped)."""
    cfg = svr.preset(preset)
    params = svr.default_params(cfg)
    params = dataclasses.replace(params, vessels=dataclasses.replace(params.vessels, **vessels))
    keys = svr.sample_keys(0, jnp.arange(8))
    dropped, capacity, valid = window_check(preset)(keys, params)
    assert int(jnp.sum(dropped)) <= 1e-4 * int(capacity[0]) * len(keys)
    assert int(jnp.min(valid)) >= 10_000  # >= 10k segments per image


def test_side_branches_shorten_with_their_radius_ratio(branching_cfg, small_params):
    """At a split the thinner child's branch is shorter than the trunk's by (r_minor / r_major) ** exponent
    (the fixed tree layout)."""
    small_cfg = branching_cfg
    exponent = 1.7
    vessels = dataclasses.replace(small_params.vessels, branch_ratio=0.45, side_length_exponent=exponent)
    params = dataclasses.replace(small_params, vessels=vessels)
    graph = jax.jit(lambda key, p: svr.grow(key, p, small_cfg, drop_oversized=False).graph)(jax.random.key(3), params)
    g = small_cfg.growth
    # Generation 1 starts after the roots' n_roots * steps segments; its first step holds the n_roots
    # trunks (slots b) and then their side branches (slots n_roots + b).
    first = g.n_roots * g.steps_per_branch
    length = np.linalg.norm(np.asarray(graph.end_mm - graph.start_mm)[first : first + 2 * g.n_roots], axis=-1)
    radius = np.asarray(graph.radius_um)[first : first + 2 * g.n_roots]
    trunk, side = slice(0, g.n_roots), slice(g.n_roots, 2 * g.n_roots)
    assert np.all(radius[side] < radius[trunk])
    np.testing.assert_allclose(length[side] / length[trunk], (radius[side] / radius[trunk]) ** exponent, rtol=1e-4)
