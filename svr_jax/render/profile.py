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
