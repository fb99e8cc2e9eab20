"""The findings record: one fixed-capacity row per possible lesion, measured from the rendered masks.

Slots, in order: ``MAX_REGIONS`` non-perfusion regions, ``MAX_MICROANEURYSMS`` microaneurysms,
``MAX_TUFTS`` neovascular tufts, ``MAX_IRMA`` IRMA. A row is ``present`` when its lesion exists *and*
covers at least one pixel of the field; every number is measured from that lesion's own mask:

* ``center_px``: centroid (column, row) in pixel-index coordinates (pixel i's centre is at i);
* ``center_mm``: the same point in mm, relative to the FAZ centre (x right, y down);
* ``bbox_px``: (x0, y0, x1, y1), inclusive pixel indices;
* ``area_mm2``: pixel count times pixel area; ``severity``: in [0, 1], per type (see ``SEVERITY``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._dropout import MAX_REGIONS
from ._irma import MAX_IRMA
from ._lesions import IRMA, LESION_NAMES, MICROANEURYSM, NEOVASCULARIZATION, NONPERFUSION
from ._microaneurysm import MAX_MICROANEURYSMS
from ._neovascularization import MAX_TUFTS

SLOT_TYPES = np.repeat(
    [NONPERFUSION, MICROANEURYSM, NEOVASCULARIZATION, IRMA], [MAX_REGIONS, MAX_MICROANEURYSMS, MAX_TUFTS, MAX_IRMA]
).astype(np.int32)
SLOT_OFFSETS = dict(zip(LESION_NAMES, map(int, np.concatenate([[0], np.cumsum([MAX_REGIONS, MAX_MICROANEURYSMS, MAX_TUFTS])]))))
MAX_FINDINGS = len(SLOT_TYPES)
SEVERITY = dict(
    nonperfusion="completeness of the capillary loss",
    microaneurysm="size within 25-130 µm diameter",
    neovascularization="tuft size",
    irma="dilation of the shunt vessel",
)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Findings:
    type: jax.Array  # [F] int32 lesion type (index into LESION_NAMES)
    present: jax.Array  # [F] bool
    center_mm: jax.Array  # [F, 2] relative to the FAZ centre
    center_px: jax.Array  # [F, 2] (column, row)
    bbox_px: jax.Array  # [F, 4] int32 (x0, y0, x1, y1) inclusive
    area_mm2: jax.Array  # [F]
    severity: jax.Array  # [F]


def _measure_windows(windows, size: int):
    """Per-lesion pixel count, centroid (x, y) and inclusive bbox of ``Windows`` footprints, in field."""
    k = windows.inside.shape[-1]
    gx = windows.corner[:, 0, None] + jnp.arange(k)  # [M, K] global column of each window column
    gy = windows.corner[:, 1, None] + jnp.arange(k)
    in_x, in_y = (gx >= 0) & (gx < size), (gy >= 0) & (gy < size)
    inside = windows.inside & in_y[:, :, None] & in_x[:, None, :]
    m = inside.astype(jnp.float32)
    count = jnp.sum(m, (1, 2))
    cx = jnp.sum(m * gx[:, None, :], (1, 2)) / jnp.maximum(count, 1)
    cy = jnp.sum(m * gy[:, :, None], (1, 2)) / jnp.maximum(count, 1)
    cols, rows = jnp.any(inside, 1), jnp.any(inside, 2)  # [M, K] (x), [M, K] (y)
    first = lambda a: jnp.argmax(a, -1)  # noqa: E731
    last = lambda a: k - 1 - jnp.argmax(a[..., ::-1], -1)  # noqa: E731
    bbox = jnp.stack([first(cols), first(rows), last(cols), last(rows)], -1) + jnp.tile(windows.corner, (1, 2))
    return count, jnp.stack([cx, cy], -1), bbox.astype(jnp.int32)


def measure_findings(windows: dict, present: dict, severity: dict, *, faz_center_mm, pixel_um: float, size: int) -> Findings:
    """Findings from each type's ``Windows`` (names in LESION_NAMES), presence [M] and severity [M]."""
    parts = [_measure_windows(windows[name], size) for name in LESION_NAMES]
    count = jnp.concatenate([p[0] for p in parts])
    center_px = jnp.concatenate([p[1] for p in parts])
    bbox = jnp.concatenate([p[2] for p in parts])
    exists = jnp.concatenate([present[name] for name in LESION_NAMES])
    sev = jnp.concatenate([severity[name] for name in LESION_NAMES])
    px_mm = pixel_um / 1000.0
    found = exists & (count > 0)
    keep = lambda a: jnp.where(found.reshape(found.shape + (1,) * (a.ndim - 1)), a, jnp.zeros_like(a))  # noqa: E731
    return Findings(
        type=jnp.asarray(SLOT_TYPES),
        present=found,
        center_mm=keep((center_px + 0.5) * px_mm - faz_center_mm),
        center_px=keep(center_px),
        bbox_px=keep(bbox),
        area_mm2=keep(count * px_mm**2),
        severity=keep(sev),
    )


def findings_to_list(findings) -> list[dict]:
    """Host-side: the present findings of ONE sample (numpy arrays) as JSON-ready dicts."""
    out = []
    for i in np.flatnonzero(np.asarray(findings.present)):
        out.append(
            dict(
                type=LESION_NAMES[int(findings.type[i])],
                center_mm=[round(float(v), 4) for v in findings.center_mm[i]],
                center_px=[round(float(v), 2) for v in findings.center_px[i]],
                bbox_px=[int(v) for v in findings.bbox_px[i]],
                area_mm2=round(float(findings.area_mm2[i]), 6),
                severity=round(float(findings.severity[i]), 4),
            )
        )
    return out
