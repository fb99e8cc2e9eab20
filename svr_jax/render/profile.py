"""What one segment contributes to one pixel: the single formula both renderers evaluate.

A vessel segment is a tube of radius r from p0 to p1. Its signal at a pixel centre is the tube's
indicator smoothed by a small anti-aliasing kernel of half-width ``a`` pixels, separably in the
segment's frame:

    soft(p) = [C((d + r)/a) - C((d - r)/a)] * [C(t/a) - C((t - L)/a)]

with d the signed distance across the segment, t the position along it, L its length and C the CDF of
the triangular kernel on [-1, 1]. Across the vessel this integrates to exactly 2r (signal proportional
to the vessel's cross-section, also for sub-pixel capillaries); along it, consecutive collinear
segments telescope to a seamless tube. Support: |d| <= r + a, -a <= t <= L + a.

The hard mask is the union of capsules: distance from the pixel centre to the segment <= max(r, 1/2)
pixel, so that sub-pixel capillaries still give a connected one-pixel-wide mask.
"""

from __future__ import annotations

import jax.numpy as jnp


def triangle_cdf(x):
    x = jnp.clip(x, -1.0, 1.0)
    return 0.5 + x - 0.5 * x * jnp.abs(x)


def support_px(radius_px, antialias_px):
    """How far beyond the segment's end points (per axis) the profile can be non-zero.

    The soft profile's support is a rectangle in the segment's frame, a beyond the ends and r + a to
    the sides; its corners lie sqrt(a² + (r + a)²) from an end point. The hard mask (a capsule of radius
    max(r, 1/2) <= r + a) lies inside once r is raised to 1/2.
    """
    return (antialias_px**2 + (radius_px + antialias_px) ** 2) ** 0.5


def segment_profile(px, py, x0, y0, x1, y1, radius_px, antialias_px):
    """Soft signal and hard mask of segments at pixel centres (all args broadcast). Pixel units."""
    dx, dy = x1 - x0, y1 - y0
    length = jnp.sqrt(dx * dx + dy * dy + 1e-12)
    ux, uy = dx / length, dy / length
    rx, ry = px - x0, py - y0
    along = rx * ux + ry * uy
    across = rx * uy - ry * ux
    inv_a = 1.0 / antialias_px
    soft = (triangle_cdf((across + radius_px) * inv_a) - triangle_cdf((across - radius_px) * inv_a)) * (
        triangle_cdf(along * inv_a) - triangle_cdf((along - length) * inv_a)
    )
    clamped = jnp.clip(along, 0.0, length)
    dist2 = (rx - clamped * ux) ** 2 + (ry - clamped * uy) ** 2
    hard = dist2 <= jnp.maximum(radius_px, 0.5) ** 2
    return soft, hard


def triangle_pdf(x):
    return jnp.maximum(1.0 - jnp.abs(x), 0.0)


def window_profile_vjp(origin_x, origin_y, window, x0, y0, x1, y1, radius_px, antialias_px, cotangent, weight):
    """Pullback of ``weight[:, c] * soft`` over square pixel windows: the splat's custom VJP.

    Segment n's window is ``window`` × ``window`` pixels whose first pixel centre is (origin_x[n],
    origin_y[n]); ``cotangent`` [N, K, K, C] is the output's cotangent on those pixels, ``weight`` [N, C].
    Returns Σ_pixels,c cotangent · ∂(weight · soft)/∂(x0, y0, x1, y1, radius) (each [N]) and the
    weight's cotangent [N, C]. The analytic derivative of ``segment_profile``'s soft formula, in one pass
    over the windows: XLA's own transpose of the formula materialises every intermediate.
    """
    k = window
    col = lambda a: a[:, None, None]  # noqa: E731
    offsets = jnp.arange(k, dtype=jnp.float32)
    dx, dy = x1 - x0, y1 - y0
    length = jnp.sqrt(dx * dx + dy * dy + 1e-12)
    ux, uy = dx / length, dy / length
    cx, cy = origin_x - x0, origin_y - y0  # the window's first pixel centre relative to the start point
    rx, ry = col(cx) + offsets, col(cy) + offsets[:, None]
    along = rx * col(ux) + ry * col(uy)
    across = rx * col(uy) - ry * col(ux)
    inv_a = 1.0 / antialias_px
    e_out, e_in = (across + col(radius_px)) * inv_a, (across - col(radius_px)) * inv_a
    t_start, t_end = along * inv_a, (along - col(length)) * inv_a
    across_part = triangle_cdf(e_out) - triangle_cdf(e_in)
    along_part = triangle_cdf(t_start) - triangle_cdf(t_end)

    # Sums over the window as matrix products: XLA's CPU reductions over small trailing axes are ~4x
    # slower than the same sums as a product with a constant matrix (measured on capillary windows).
    flat = lambda v: v.reshape(v.shape[0], k * k)  # noqa: E731
    ones = jnp.ones(k * k, jnp.float32)
    moments = jnp.stack([ones, jnp.tile(offsets, k), jnp.repeat(offsets, k)], -1)  # 1, offset x, offset y
    soft = across_part * along_part
    g_weight = jnp.stack([flat(soft * cotangent[..., c]) @ ones for c in range(weight.shape[-1])], -1)
    g_soft = jnp.sum(cotangent * weight[:, None, None, :], -1)
    g_across = g_soft * along_part * (triangle_pdf(e_out) - triangle_pdf(e_in)) * inv_a
    g_along = g_soft * across_part * (triangle_pdf(t_start) - triangle_pdf(t_end)) * inv_a
    g_length = flat(g_soft * across_part * triangle_pdf(t_end)) @ ones * inv_a
    g_radius = flat(g_soft * along_part * (triangle_pdf(e_out) + triangle_pdf(e_in))) @ ones * inv_a
    m_across, m_along = flat(g_across) @ moments, flat(g_along) @ moments  # [N, 3]
    sum_across, sum_along = m_across[:, 0], m_along[:, 0]
    # across = rx·uy − ry·ux, along = rx·ux + ry·uy, rx = px − x0 (Σ g·rx = Σ g·offset_x + cx·Σ g); the
    # direction (ux, uy) and the length are functions of the end points, chained per segment below.
    g_ux = (m_along[:, 1] + cx * sum_along) - (m_across[:, 2] + cy * sum_across)
    g_uy = (m_across[:, 1] + cx * sum_across) + (m_along[:, 2] + cy * sum_along)
    g_x0 = -(uy * sum_across + ux * sum_along)
    g_y0 = ux * sum_across - uy * sum_along
    inv_len = 1.0 / length
    inv_len3 = inv_len**3
    g_dx = g_ux * (inv_len - dx * dx * inv_len3) - g_uy * dx * dy * inv_len3 + g_length * dx * inv_len
    g_dy = g_uy * (inv_len - dy * dy * inv_len3) - g_ux * dx * dy * inv_len3 + g_length * dy * inv_len
    return g_x0 - g_dx, g_y0 - g_dy, g_dx, g_dy, g_radius, g_weight
