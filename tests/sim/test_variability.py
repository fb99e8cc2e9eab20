"""Per-sample parameter spread (domain randomisation) and the illumination field it varies."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svr_jax import config as config_lib
from svr_jax.simulate import simulate
from svr_jax.variability import ADDITIVE, COMPLEMENTS, SPREADS, per_sample_params, sample_params


def test_scale_zero_is_the_preset_and_draws_are_reproducible():
    params = config_lib.default_params(config_lib.preset("3mm"))
    same = sample_params(jax.random.key(0), params, 0.0)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(same)):
        assert np.allclose(a, b)
    a, b = sample_params(jax.random.key(3), params), sample_params(jax.random.key(3), params)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    # A traced spread (one program for every spread) gives the preset bit for bit at 0, the draw elsewhere.
    traced = jax.jit(lambda key, scale: per_sample_params(key, params, scale))
    at_zero, at_half = traced(jax.random.key(3), jnp.float32(0.0)), traced(jax.random.key(3), jnp.float32(0.5))
    assert all(np.array_equal(x, np.asarray(y, x.dtype)) for x, y in zip(jax.tree_util.tree_leaves(at_zero), jax.tree_util.tree_leaves(params)))
    want = per_sample_params(jax.random.key(3), params, 0.5)
    assert all(np.allclose(x, y, rtol=1e-6) for x, y in zip(jax.tree_util.tree_leaves(at_half), jax.tree_util.tree_leaves(want)))
    assert not np.allclose(at_half.appearance.gain, params.appearance.gain)


def test_spread_matches_the_table_and_fractions_stay_valid():
    params = config_lib.default_params(config_lib.preset("3mm"))
    draws = jax.vmap(lambda k: sample_params(k, params))(jax.random.split(jax.random.key(1), 2000))
    for group, name, sd in SPREADS:
        values = np.asarray(getattr(getattr(draws, group), name))
        base = float(getattr(getattr(params, group), name))
        if name in ADDITIVE:
            assert np.std(values - base) == pytest.approx(sd, rel=0.1), name
            continue
        if name in COMPLEMENTS:  # the undimmed part 1 - value is log-normal, clipped to [0, 1]
            assert values.min() >= 0.0 and values.max() <= 1.0
            log_ratio = np.log((1.0 - values) / (1.0 - base))
            # The clip only cuts the top: the median and the lower quartile are the log-normal's.
            assert np.median(log_ratio) == pytest.approx(0.0, abs=0.05 * sd), name
            assert np.percentile(log_ratio, 25) == pytest.approx(-0.6745 * sd, rel=0.1), name
            continue
        assert np.all(values > 0)
        if name in ("capillary_presence", "deep_presence"):
            assert values.max() <= 1.0
        else:
            assert np.std(np.log(values / base)) == pytest.approx(sd, rel=0.1), name


def test_varied_batch_renders_and_differs_per_sample(small_batch, small_params):
    # The exporters' program at two spreads (an argument: one compilation, shared with test_simulate).
    images = np.asarray(small_batch("normal", small_params, variability=1.0).image)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    plain = np.asarray(small_batch("normal", small_params).image)
    assert not np.allclose(images, plain)
    means = images.mean((1, 2))
    assert np.ptp(means) > 0.01  # brightness varies between samples


# Written as tests/sim/test_simulate.py writes it (same lambda, same small config, parameters as
# arguments): the persistent XLA cache compiles it once for both files.
def test_illumination_field_varies_the_signal_slowly(small_cfg, small_params):
    params = small_params
    flat = dataclasses.replace(params, appearance=dataclasses.replace(params.appearance, illumination_sd=0.0))
    strong = dataclasses.replace(params, appearance=dataclasses.replace(params.appearance, illumination_sd=0.5))
    key = jax.random.key(7)
    one = jax.jit(lambda key, params: simulate(key, params, small_cfg))
    a, b = (np.asarray(one(key, p).image) for p in (flat, strong))
    blocks = lambda im: im.reshape(4, 24, 4, 24).mean((1, 3))  # 0.375 mm blocks
    assert np.std(np.log(blocks(b) / blocks(a))) > 0.1  # a gain field across the field ...
    grad = jax.jit(jax.grad(lambda s: jnp.mean(simulate(key, dataclasses.replace(params, appearance=dataclasses.replace(
        params.appearance, illumination_sd=s)), small_cfg).image ** 2)))(0.2)
    assert np.isfinite(grad) and grad != 0  # ... differentiable in its strength
