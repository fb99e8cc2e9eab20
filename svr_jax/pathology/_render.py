"""Rendering lesions: soft signal into the image, and per-lesion windows for masks and measurements.

Every lesion is drawn into its own static K×K pixel window (``Windows``: a corner and a boolean
footprint), so that each one is measured from its own mask even where lesions overlap, and the
windows are then painted into full-size label maps (scatter-max of 1-based instance labels).

* Microaneurysms (``Blobs``) are ellipsoids seen from above: their signal is the projected thickness
  2 b sqrt(1 - d²) (b the minor semi-axis in pixels, d the normalised elliptic radius), matching the 2r
  cross-section of a tube; their footprint is d <= 1.
* Tufts (NV, IRMA) are segments: soft signal through ``render_windowed``, footprint from the same hard
  capsule test (``segment_profile``) on each segment's window, combined into its lesion's window.
* Non-perfusion regions: footprint = pixel centre inside the region's border.

The dense twins (``*_dense``) evaluate every lesion at every pixel; the tests compare against them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..render import render_windowed, window_size
from ..render.profile import segment_profile, support_px
from ._lesions import Blobs, Tufts
from ._regions import Regions, signed_depth_mm

_WINDOW_SCATTER = lax.ScatterDimensionNumbers(update_window_dims=(1, 2), inserted_window_dims=(), scatter_dims_to_operand_dims=(0, 1))
_LESION_SCATTER = lax.ScatterDimensionNumbers(update_window_dims=(1, 2), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0, 1, 2))


class Windows(NamedTuple):
    corner: jax.Array  # [M, 2] int32 (x, y) of the window's top-left pixel
    inside: jax.Array  # [M, K, K] bool footprint of each lesion (rows y, columns x)


def _grid(corner, k: int):
    offsets = jnp.arange(k, dtype=jnp.float32)
    px = (corner[:, 0, None] + offsets + 0.5)[:, None, :]  # [M, 1, K] pixel centres
    py = (corner[:, 1, None] + offsets + 0.5)[:, :, None]  # [M, K, 1]
    return px, py


def _corner(lo_px, size: int, k: int):
    """First pixel whose centre can be in a support starting at ``lo_px``; far-away ones are parked."""
    return jnp.clip(jnp.ceil(lo_px - 0.5).astype(jnp.int32), -k, size)


def paint(values, corner, size: int, op=lax.scatter_max):
    """Combine [M, K, K] windows into a [size, size] canvas (max by default)."""
    k = values.shape[-1]
    canvas = jnp.zeros((size + 2 * k, size + 2 * k), values.dtype)
    canvas = op(canvas, corner[:, ::-1] + k, values, _WINDOW_SCATTER, mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return canvas[k : k + size, k : k + size]


def paint_labels(windows: Windows, size: int):
    """[H, W] int32: 1 + index of the (largest-index) lesion covering each pixel, 0 for none."""
    label = windows.inside.astype(jnp.int32) * (1 + jnp.arange(windows.inside.shape[0], dtype=jnp.int32))[:, None, None]
    return paint(label, windows.corner, size)


# --- microaneurysms -----------------------------------------------------------------------------

def blob_window(max_radius_um: float, max_aspect: float, pixel_um: float) -> int:
    return int(math.ceil(2 * max_radius_um * max_aspect / pixel_um)) + 3


def _blob_profile(px, py, blobs: Blobs, pixel_um: float):
    """(thickness, inside) of blobs at pixel centres; blob arrays broadcast as [M, 1, 1]."""
    col = lambda a: a[:, None, None]  # noqa: E731
    cx, cy = col(blobs.center_mm[:, 0] * 1000.0 / pixel_um), col(blobs.center_mm[:, 1] * 1000.0 / pixel_um)
    minor = col(blobs.radius_um / pixel_um)
    major = minor * col(blobs.aspect)
    ux, uy = col(blobs.axis[:, 0]), col(blobs.axis[:, 1])
    rx, ry = px - cx, py - cy
    d2 = ((rx * ux + ry * uy) / major) ** 2 + ((rx * uy - ry * ux) / minor) ** 2
    thickness = 2.0 * minor * (jnp.sqrt(jnp.maximum(1.0 - d2, 0.0) + 1e-6) - 1e-3)  # finite gradient at the rim
    inside = (d2 <= 1.0) & col(blobs.present)
    return jnp.maximum(thickness, 0.0) * col(blobs.present), inside


def render_blobs(blobs: Blobs, *, size: int, pixel_um: float, window: int):
    """(signal [H, W], Windows) of ellipsoidal blobs."""
    center_px = blobs.center_mm * 1000.0 / pixel_um
    corner = _corner(center_px - 0.5 * (window - 1), size, window)
    px, py = _grid(corner, window)
    thickness, inside = _blob_profile(px, py, blobs, pixel_um)
    return paint(thickness, corner, size, lax.scatter_add), Windows(corner, inside)


def render_blobs_dense(blobs: Blobs, *, size: int, pixel_um: float):
    """Oracle of ``render_blobs``: (signal, labels) with every blob at every pixel."""
    c = jnp.arange(size, dtype=jnp.float32) + 0.5
    thickness, inside = _blob_profile(c[None, None, :], c[None, :, None], blobs, pixel_um)
    label = inside.astype(jnp.int32) * (1 + jnp.arange(blobs.capacity, dtype=jnp.int32))[:, None, None]
    return jnp.sum(thickness, 0), jnp.max(label, 0)


# --- neovascular tufts and IRMA ----------------------------------------------------------------

def segment_window(max_segment_mm: float, max_radius_um: float, pixel_um: float, antialias_px: float) -> int:
    """Window of one segment for the soft splat (``render_windowed``)."""
    return window_size(1000.0 * max_segment_mm / pixel_um, max_radius_um / pixel_um, antialias_px)


def lesion_window(max_extent_mm: float, max_radius_um: float, pixel_um: float, antialias_px: float) -> int:
    """Window of a whole tuft whose segments' end points span at most ``max_extent_mm`` per axis."""
    return int(math.floor(1000.0 * max_extent_mm / pixel_um + 2 * support_px(max(max_radius_um / pixel_um, 0.5), antialias_px))) + 2


def render_tufts(tufts: Tufts, signal, *, size: int, pixel_um: float, segment_k: int, lesion_k: int, antialias_px: float):
    """(signal [H, W], Windows) of tuft segments."""
    g = tufts.segments
    to_px = 1000.0 / pixel_um
    start, end, radius = g.start_mm * to_px, g.end_mm * to_px, g.radius_um / pixel_um
    alive = g.valid.astype(jnp.float32)
    soft, _ = render_windowed(
        start, end, radius, (alive * g.perfusion * signal)[:, None], jnp.zeros((g.capacity, 0)),
        height=size, width=size, window=segment_k, antialias_px=antialias_px,
    )
    # Footprint: each segment's hard capsule on its own small window, max-scattered into its lesion's
    # window (a lesion's window starts at or before each of its segments' windows: same corner rule).
    m, s = tufts.capacity, tufts.segments_per_lesion
    lo = jnp.minimum(start, end) - support_px(jnp.maximum(radius, 0.5), antialias_px)[:, None]  # [M*S, 2]
    seg_corner = _corner(lo, size, segment_k)
    lesion_corner = _corner(jnp.min(lo.reshape(m, s, 2), axis=1), size, lesion_k)
    px, py = _grid(seg_corner, segment_k)
    col = lambda a: a[:, None, None]  # noqa: E731
    _, hard = segment_profile(px, py, col(start[:, 0]), col(start[:, 1]), col(end[:, 0]), col(end[:, 1]), col(radius), antialias_px)
    hard = (hard & col(g.valid)).astype(jnp.int32)
    lesion = jnp.arange(m * s) // s
    offset = jnp.clip(seg_corner - lesion_corner[lesion], 0, lesion_k)[:, ::-1]  # (y, x) in the lesion window
    canvas = jnp.zeros((m, lesion_k + segment_k, lesion_k + segment_k), jnp.int32)
    canvas = lax.scatter_max(canvas, jnp.concatenate([lesion[:, None], offset], 1), hard, _LESION_SCATTER,
                             mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return soft[..., 0], Windows(lesion_corner, canvas[:, :lesion_k, :lesion_k] > 0)


def render_tufts_dense(tufts: Tufts, *, size: int, pixel_um: float, antialias_px: float):
    """Oracle of the labels of ``render_tufts``: every segment at every pixel."""
    g = tufts.segments
    to_px = 1000.0 / pixel_um
    c = jnp.arange(size, dtype=jnp.float32) + 0.5
    col = lambda a: a[:, None, None]  # noqa: E731
    _, hard = segment_profile(
        c[None, None, :], c[None, :, None], col(g.start_mm[:, 0] * to_px), col(g.start_mm[:, 1] * to_px),
        col(g.end_mm[:, 0] * to_px), col(g.end_mm[:, 1] * to_px), col(g.radius_um / pixel_um), antialias_px,
    )
    lesion = jnp.arange(g.capacity) // tufts.segments_per_lesion
    return jnp.max((hard & col(g.valid)).astype(jnp.int32) * col(lesion + 1), 0)


# --- non-perfusion regions ---------------------------------------------------------------------

def region_window(max_radius_mm: float, pixel_um: float) -> int:
    return 2 * int(math.ceil(1000.0 * max_radius_mm / pixel_um)) + 2


def render_regions(regions: Regions, *, size: int, pixel_um: float, window: int) -> Windows:
    center_px = regions.center_mm * 1000.0 / pixel_um
    corner = _corner(center_px - 0.5 * (window - 1), size, window)
    px, py = _grid(corner, window)
    mm = pixel_um / 1000.0
    points = jnp.stack(jnp.broadcast_arrays(px * mm, py * mm), -1)  # [R, K, K, 2]
    depth = jax.vmap(lambda r, p: signed_depth_mm(jax.tree.map(lambda a: a[None], r), p)[0])(regions, points)
    return Windows(corner, (depth > 0) & regions.present[:, None, None])
