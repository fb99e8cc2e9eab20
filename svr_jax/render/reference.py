"""Dense reference renderer: every segment evaluated at every pixel. O(H·W·N); test oracle only."""

from __future__ import annotations

import jax.numpy as jnp

from .profile import segment_profile


def render_dense(start_px, end_px, radius_px, soft_weight, hard_weight, *, height: int, width: int, antialias_px: float = 1.0):
    """Sum of every segment's weighted profile at every pixel centre.

    start_px, end_px: [N, 2] (x, y) in pixels; radius_px: [N]; soft_weight: [N, Cs]; hard_weight: [N, Ch].
    Returns (soft [H, W, Cs], hard [H, W, Ch]): soft channels sum ``soft * weight``; hard channels sum
    ``hard`` over segments whose weight is > 0, as int32 counts (a mask is ``> 0`` of it).
    """
    py, px = jnp.meshgrid(jnp.arange(height) + 0.5, jnp.arange(width) + 0.5, indexing="ij")
    px, py = px[..., None], py[..., None]  # [H, W, 1] against segments [N]
    soft, hard = segment_profile(
        px, py, start_px[:, 0], start_px[:, 1], end_px[:, 0], end_px[:, 1], radius_px, antialias_px
    )
    counts = jnp.einsum("hwn,nc->hwc", hard.astype(jnp.int32), (hard_weight > 0).astype(jnp.int32))
    return jnp.einsum("hwn,nc->hwc", soft, soft_weight), counts
