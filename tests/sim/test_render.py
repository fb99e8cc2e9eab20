"""Fast windowed splat vs the dense reference oracle: values and gradients (as gsplat's tests do)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svr_jax.render import render_dense, render_windowed, window_size
from svr_jax.render.profile import segment_profile

H = W = 40
AA = 0.75


def random_segments(key, n, max_span, max_radius):
    k0, k1, k2, k3 = jax.random.split(key, 4)
    start = jax.random.uniform(k0, (n, 2), minval=-4.0, maxval=W + 4.0)  # some straddle the border
    end = start + jax.random.uniform(k1, (n, 2), minval=-max_span, maxval=max_span)
    radius = jax.random.uniform(k2, (n,), minval=0.1, maxval=max_radius)
    soft_w = jax.random.uniform(k3, (n, 2), minval=0.2, maxval=1.5)
    hard_w = (jax.random.uniform(k3, (n, 3)) > 0.4).astype(jnp.float32)
    return start, end, radius, soft_w, hard_w


@pytest.mark.parametrize("max_span,max_radius", [(3.0, 0.6), (8.0, 3.5)])
def test_windowed_matches_dense_values(max_span, max_radius):
    start, end, radius, soft_w, hard_w = random_segments(jax.random.key(1), 300, max_span, max_radius)
    k = window_size(max_span, max_radius, AA)
    fast_soft, fast_hard = render_windowed(start, end, radius, soft_w, hard_w, height=H, width=W, window=k, antialias_px=AA)
    ref_soft, ref_hard = render_dense(start, end, radius, soft_w, hard_w, height=H, width=W, antialias_px=AA)
    assert float(jnp.max(ref_soft)) > 0.5  # the scene is not empty
    np.testing.assert_allclose(fast_soft, ref_soft, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fast_hard, ref_hard)


def test_too_small_window_is_detected():
    """The oracle comparison is sensitive: a window too small for the segments fails it."""
    start, end, radius, soft_w, hard_w = random_segments(jax.random.key(2), 300, 3.0, 0.6)
    k = window_size(3.0, 0.6, AA) - 3
    fast, _ = render_windowed(start, end, radius, soft_w, hard_w, height=H, width=W, window=k, antialias_px=AA)
    ref, _ = render_dense(start, end, radius, soft_w, hard_w, height=H, width=W, antialias_px=AA)
    assert float(jnp.max(jnp.abs(fast - ref))) > 1e-3


@pytest.mark.parametrize("argnum,name", [(0, "start"), (1, "end"), (2, "radius"), (3, "weight")])
def test_windowed_matches_dense_gradients(argnum, name):
    start, end, radius, soft_w, hard_w = random_segments(jax.random.key(3), 60, 5.0, 2.0)
    k = window_size(5.0, 2.0, AA)
    target = jax.random.uniform(jax.random.key(4), (H, W, 2))

    def loss(renderer, *args, **kw):
        soft, _ = renderer(*args, hard_w, height=H, width=W, antialias_px=AA, **kw)
        return jnp.sum((soft - target) ** 2)

    args = (start, end, radius, soft_w)
    g_fast = jax.grad(lambda *a: loss(render_windowed, *a, window=k), argnums=argnum)(*args)
    g_ref = jax.grad(lambda *a: loss(render_dense, *a), argnums=argnum)(*args)
    assert float(jnp.max(jnp.abs(g_ref))) > 1e-3, f"gradient w.r.t. {name} is trivially zero"
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-4, atol=1e-4)


def test_profile_cross_section_integrates_to_diameter():
    """Signal ∝ vessel cross-section: ∫ soft d(across) = 2 r, also for sub-pixel capillaries."""
    across = jnp.linspace(-6.0, 6.0, 24001)
    for radius in (0.2, 0.5, 2.0):
        soft, _ = segment_profile(5.0, across, -50.0, 0.0, 60.0, 0.0, radius, AA)
        integral = float(jnp.sum(soft) * (across[1] - across[0]))
        assert integral == pytest.approx(2 * radius, rel=1e-3)


def test_collinear_segments_telescope_into_one():
    """Consecutive collinear segments render exactly like the single segment they split."""
    px, py = jnp.meshgrid(jnp.linspace(-3, 13, 65), jnp.linspace(-3, 3, 25))
    whole, _ = segment_profile(px, py, 0.0, 0.0, 10.0, 0.0, 0.8, AA)
    a, _ = segment_profile(px, py, 0.0, 0.0, 4.0, 0.0, 0.8, AA)
    b, _ = segment_profile(px, py, 4.0, 0.0, 10.0, 0.0, 0.8, AA)
    np.testing.assert_allclose(a + b, whole, atol=1e-6)


def test_hard_mask_is_capsule_union():
    soft, hard = segment_profile(jnp.array([0.5, 0.5, 5.0]), jnp.array([0.4, 0.6, 0.0]), 0.0, 0.0, 10.0, 0.0, 0.3, AA)
    # Sub-pixel radius: mask half-width is half a pixel.
    assert hard.tolist() == [True, False, True]
