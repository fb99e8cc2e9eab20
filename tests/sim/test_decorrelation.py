"""The simulated decorrelation against a slow reference that draws both scans' complex fields."""

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import svr_jax as svr
from svr_jax import decorrelation


def reference_looks(rng, flow_fraction: float, noise: float, n: int) -> np.ndarray:
    """[n] single looks, drawn the long way: two scans' complex OCT fields, renewed between the scans
    with probability ``flow_fraction`` (flow), else one speckle seen twice (static), each scan with
    its own complex noise; decorrelation of the two amplitudes, in units of the flow mean."""
    def complex_normal():
        return rng.normal(size=n) + 1j * rng.normal(size=n)

    first = complex_normal()
    in_flow = rng.random(n) < flow_fraction
    second = np.where(in_flow, complex_normal(), first)
    a1, a2 = np.abs(first + noise * complex_normal()), np.abs(second + noise * complex_normal())
    return (1.0 - 2.0 * a1 * a2 / (a1**2 + a2**2)) / decorrelation.FLOW_MEAN


def fast_looks(key, flow_fraction: float, noise: float, n: int) -> np.ndarray:
    """[n] single looks from the library (one look per pixel of an n-pixel row)."""
    return np.asarray(decorrelation.simulated_decorrelation(key, jnp.full((1, n), flow_fraction), noise, looks=1)).ravel()


@pytest.mark.parametrize("flow_fraction, noise", [(1.0, 0.0), (0.0, 0.3), (0.3, 0.15), (0.7, 0.5)])
def test_single_looks_match_the_two_scan_reference(flow_fraction, noise):
    n = 200_000
    ref = reference_looks(np.random.default_rng(0), flow_fraction, noise, n)
    fast = fast_looks(jax.random.key(1), flow_fraction, noise, n)
    # Means within 4 standard errors; the quantiles (the distribution's shape) within 0.01 of the range.
    se = math.sqrt(np.var(ref) / n + np.var(fast) / n)
    assert abs(fast.mean() - ref.mean()) < 4 * se + 1e-6
    q = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(np.quantile(fast, q), np.quantile(ref, q), atol=0.01 / decorrelation.FLOW_MEAN)
    # The whole law, tails included: the two-sample Kolmogorov-Smirnov distance under its 0.1 % critical value.
    assert scipy.stats.ks_2samp(fast, ref).statistic < 1.95 * math.sqrt(2.0 / n)


def test_the_look_formula_at_kappa_one_is_the_two_scan_flow_law():
    # The derivation's other end: kappa = 1 (independent scans) against the reference's flow looks.
    rng = np.random.default_rng(7)
    n = 200_000
    w, cos2_phi = rng.random(n), np.cos(np.pi * rng.random(n)) ** 2
    polar = np.asarray(decorrelation.look_decorrelation(jnp.asarray(w), jnp.asarray(cos2_phi), 1.0)) / decorrelation.FLOW_MEAN
    assert scipy.stats.ks_2samp(polar, reference_looks(rng, 1.0, 0.0, n)).statistic < 1.95 * math.sqrt(2.0 / n)


def test_flow_mean_is_one_and_noise_free_static_tissue_is_zero():
    n = 100_000
    assert fast_looks(jax.random.key(2), 1.0, 0.0, n).mean() == pytest.approx(1.0, abs=0.01)
    static = fast_looks(jax.random.key(3), 0.0, 0.0, n)
    assert np.abs(static).max() < 1e-5  # one speckle seen twice without noise does not decorrelate
    noisy = fast_looks(jax.random.key(3), 0.0, 0.3, n).mean()
    assert 0.05 < noisy < fast_looks(jax.random.key(3), 0.0, 0.6, n).mean() < 1.0  # noise alone decorrelates, more with more


def test_looks_average_and_the_mean_is_linear_in_the_flow_fraction():
    key = jax.random.key(4)
    image = jnp.full((64, 64), 0.4)
    one, eight = (np.asarray(decorrelation.simulated_decorrelation(key, image, 0.0, looks=k)) for k in (1, 8))
    assert eight.mean() == pytest.approx(0.4, abs=0.02)  # no noise: mean p x 1 + (1 - p) x 0
    assert eight.std() < 0.45 * one.std()  # averaging 8 looks: sd / sqrt(8) = 0.35
    means = [float(decorrelation.simulated_decorrelation(key, jnp.full((64, 64), p), 0.0, looks=8).mean()) for p in (0.1, 0.2, 0.3)]
    assert means[1] - means[0] == pytest.approx(means[2] - means[1], abs=0.02)


def test_gradients_reach_the_flow_fraction_and_the_noise():
    key = jax.random.key(5)

    def mean_image(p, noise):
        return jnp.mean(decorrelation.simulated_decorrelation(key, jnp.full((32, 32), p), noise, looks=4))

    d_p, d_noise = jax.grad(mean_image, argnums=(0, 1))(0.3, 0.2)
    assert np.isfinite(d_p) and np.isfinite(d_noise)
    assert d_p == pytest.approx(1.0 - 0.14, abs=0.25)  # d/dp [p + (1 - p) static mean], static mean ~0.14 at 0.2
    assert d_noise > 0


def straight_through_reference(key, flow_fraction, noise, looks):
    """The same looks (same draws), differentiated by autodiff of the straight-through soft step."""
    u, w, cos2_phi = decorrelation.look_draws(jax.random.bits(key, (2, looks) + flow_fraction.shape, jnp.uint32))
    static = decorrelation.look_decorrelation(w, cos2_phi, noise**2 / (2.0 + noise**2))
    soft = jax.nn.sigmoid((flow_fraction - u) / decorrelation.MIX_SOFTNESS)
    in_flow = (u < flow_fraction).astype(soft.dtype) + soft - jax.lax.stop_gradient(soft)
    return jnp.mean(in_flow * decorrelation.flow_look(w) + (1.0 - in_flow) * static, axis=0) / decorrelation.FLOW_MEAN


def test_the_forward_pass_gradient_is_the_straight_through_autodiff():
    key = jax.random.key(8)
    p = jax.random.uniform(jax.random.key(9), (48, 48))
    weights = jax.random.normal(jax.random.key(10), (48, 48))  # a loss that weighs pixels differently

    def loss(f, p, noise):
        return jnp.sum(weights * f(key, p, noise, 8))

    fast = jax.jit(jax.value_and_grad(partial(loss, decorrelation.simulated_decorrelation), argnums=(0, 1)))(p, 0.2)
    ref = jax.value_and_grad(partial(loss, straight_through_reference), argnums=(0, 1))(p, 0.2)
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(fast[1][0], ref[1][0], rtol=1e-3, atol=1e-5)  # float32 rounding of the slope
    np.testing.assert_allclose(fast[1][1], ref[1][1], rtol=1e-4)
    assert float(jnp.abs(ref[1][0]).sum()) > 1.0 and abs(float(ref[1][1])) > 0.1  # gradients that can differ


def test_the_appearance_switches_to_it_and_stays_in_range(small_cfg, small_params):
    signal = jnp.zeros((small_cfg.field.size_px,) * 2).at[40:56, :].set(0.8)
    key = jax.random.key(6)
    lognormal = svr.apply_appearance(key, small_params.appearance, signal, jnp.zeros_like(signal), small_cfg)
    drawn_cfg = dataclasses.replace(small_cfg, noise="decorrelation", decorrelation_looks=4)
    drawn = svr.apply_appearance(key, small_params.appearance, signal, jnp.zeros_like(signal), drawn_cfg)
    lognormal, drawn = np.asarray(lognormal), np.asarray(drawn)
    assert not np.allclose(lognormal, drawn)
    for image in (lognormal, drawn):
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
        assert image[40:56].mean() > image[70:].mean() + 0.1  # the vessel band stands out
    # oct_noise acts only with looks > 0, speckle only without.
    def render(cfg, **changes):
        appearance = dataclasses.replace(small_params.appearance, **changes)
        return np.asarray(svr.apply_appearance(key, appearance, signal, jnp.zeros_like(signal), cfg))

    assert np.array_equal(render(drawn_cfg, speckle=0.9), drawn) and not np.array_equal(render(drawn_cfg, oct_noise=0.4), drawn)
    assert np.array_equal(render(small_cfg, oct_noise=0.4), lognormal) and not np.array_equal(render(small_cfg, speckle=0.9), lognormal)
