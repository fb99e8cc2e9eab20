"""Host-side (numpy) measurement of everything the text states, from a rendered sample.

``measure(...)`` builds one ``Measured`` record from a sample's arrays: the image, the vessel and FAZ
masks, the findings list (``pathology.findings_to_list``: every lesion measured from its own mask),
the eye's laterality and the graph's tortuosity index. Nothing here reads the intended parameters or the
intended stage: the text is a function of ``Measured`` only (see ``reasoning.py``), and the stage it
states is graded from the measured lesions by ``grade`` (rules below).

Geometry. Positions are taken relative to the *measured* FAZ centroid, x to the right, y down (image
rows; superior is up). Sectors follow the ETDRS layout: a central disc of 1 mm diameter, the
parafoveal ring (1-3 mm diameter) and, for fields of 4.5 mm and more, the perifoveal ring (3-6 mm), the
rings split into superior / inferior / nasal / temporal quadrants. Nasal is towards the optic disc:
to the right in a right eye (OD, ``nasal_sign = +1``), to the left in a left eye (OS).

Grading rules (``grade``), applied to measured findings only, in this order:

* PDR: any neovascularization;
* severe NPDR: any IRMA, or ``SEVERE_MIN_REGIONS`` or more non-perfusion areas, or a total
  non-perfused area of at least ``SEVERE_NONPERFUSION_MM2``;
* moderate NPDR: any non-perfusion (below those limits), or more than ``MILD_MAX_MICROANEURYSMS``
  microaneurysms;
* mild NPDR: microaneurysms only (1 to ``MILD_MAX_MICROANEURYSMS``);
* normal: none of the above.

Venous beading is not graded: the simulator records only the amplitude it applied, not a measurement.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from ..config import SimConfig

STAGES = ("normal", "mild", "moderate", "severe", "pdr")
QUADRANTS = ("superior", "inferior", "nasal", "temporal")
CENTRAL_RADIUS_MM = 0.5
PARAFOVEAL_RADIUS_MM = 1.5
PERIFOVEAL_RADIUS_MM = 3.0
PERIFOVEAL_MIN_FOV_MM = 4.5
MIN_SECTOR_COVERAGE = 0.25  # a sector is reported when at least this fraction of it lies in the field

SEVERE_MIN_REGIONS = 3
SEVERE_NONPERFUSION_MM2 = 0.6
MILD_MAX_MICROANEURYSMS = 7

# Qualitative thresholds of the sentence families (all on measured values).
FAZ_ENLARGED_MM2 = 0.45
FAZ_IRREGULAR_CIRCULARITY = 0.70
TORTUOSITY_INCREASED = 1.02
CONTRAST_GOOD = 0.25
CONTRAST_ADEQUATE = 0.12
DENSITY_REDUCED_RATIO = 0.8  # a sector below this fraction of the ring's median is "reduced"


@dataclass(frozen=True)
class Lesion:
    """One measured lesion: where it lies and how large it is."""

    type: str  # nonperfusion | microaneurysm | neovascularization | irma
    sector: str  # e.g. "central", "superior parafoveal", "nasal perifoveal"
    offset_mm: tuple[float, float]  # centroid relative to the FAZ centroid (x right, y down)
    area_mm2: float
    bbox_px: tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive
    bbox_rel: tuple[int, int, int, int]  # the same box on Qwen-VL's 0-1000 grid


@dataclass(frozen=True)
class Measured:
    """Everything the text may state about one image, measured from the rendered sample."""

    fov_mm: float
    size_px: int
    laterality: str  # "OD" | "OS"
    contrast: float  # mean image inside vessels minus outside
    faz_area_mm2: float
    faz_circularity: float  # 4πA/P² of the measured FAZ outline
    faz_offset_mm: float  # distance of the FAZ centroid from the field centre
    density_pct: float  # vessel-mask fraction of the whole field, in %
    sector_density_pct: dict = field(default_factory=dict)  # sector -> % (reported sectors only)
    lesions: tuple = ()  # Lesion records, all types
    tortuosity_index: float = 1.0

    def of(self, kind: str) -> tuple:
        return tuple(l for l in self.lesions if l.type == kind)

    @property
    def nonperfusion(self) -> tuple:
        return self.of("nonperfusion")

    @property
    def microaneurysms(self) -> tuple:
        return self.of("microaneurysm")

    @property
    def irma(self) -> tuple:
        return self.of("irma")

    @property
    def neovascularization(self) -> tuple:
        return self.of("neovascularization")

    @property
    def nonperfusion_mm2(self) -> float:
        return float(sum(l.area_mm2 for l in self.nonperfusion))

    @property
    def stage(self) -> str:
        return grade(self)[0]

    @property
    def label_dr(self) -> int:
        return int(self.stage != "normal")

    def replace(self, **changes) -> "Measured":
        return dataclasses.replace(self, **changes)


def grade(m: Measured) -> tuple[str, tuple[str, ...]]:
    """(stage, evidence keys) from measured findings (module docstring)."""
    n_np, np_area, n_ma = len(m.nonperfusion), m.nonperfusion_mm2, len(m.microaneurysms)
    if m.neovascularization:
        return "pdr", ("neovascularization",)
    severe = []
    if m.irma:
        severe.append("irma")
    if n_np >= SEVERE_MIN_REGIONS or np_area >= SEVERE_NONPERFUSION_MM2:
        severe.append("extensive_nonperfusion")
    if severe:
        return "severe", tuple(severe)
    if n_np:
        return "moderate", ("nonperfusion",) + (("many_microaneurysms",) if n_ma > MILD_MAX_MICROANEURYSMS else ())
    if n_ma > MILD_MAX_MICROANEURYSMS:
        return "moderate", ("many_microaneurysms",)
    if n_ma:
        return "mild", ("microaneurysms",)
    return "normal", ()


def sector_of(dx_mm: float, dy_mm: float, nasal_sign: float) -> str:
    """ETDRS sector of a point relative to the FAZ centre (x right, y down)."""
    r = math.hypot(dx_mm, dy_mm)
    if r < CENTRAL_RADIUS_MM:
        return "central"
    ring = "parafoveal" if r < PARAFOVEAL_RADIUS_MM else "perifoveal"
    return f"{_quadrant(dx_mm, dy_mm, nasal_sign)} {ring}"


def _quadrant(dx, dy, nasal_sign):
    if abs(dy) >= abs(dx):
        return "superior" if dy < 0 else "inferior"
    return "nasal" if dx * nasal_sign > 0 else "temporal"


def _quadrant_map(dx, dy, nasal_sign) -> np.ndarray:
    vertical = np.abs(dy) >= np.abs(dx)
    return np.where(vertical, np.where(dy < 0, 0, 1), np.where(dx * nasal_sign > 0, 2, 3))


def faz_geometry(faz_mask: np.ndarray, pixel_mm: float) -> tuple[float, float, np.ndarray]:
    """(area mm², circularity, centroid (x, y) in mm) of the FAZ mask's largest component.

    The outline is the star-shaped polygon of the component's farthest pixel corner in each of about
    half as many directions as it has border pixels, median-filtered over 3 directions; circularity = 4πA/P² of that polygon (1 for a disc).
    """
    labels, n = ndimage.label(faz_mask)
    if n == 0:
        size = faz_mask.shape[0]
        return 0.0, 0.0, np.full(2, 0.5 * size * pixel_mm)
    sizes = ndimage.sum_labels(faz_mask, labels, np.arange(1, n + 1))
    main = labels == (1 + int(np.argmax(sizes)))
    area = float(faz_mask.sum()) * pixel_mm**2
    ys, xs = np.nonzero(main)
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    boundary = int(np.sum(main & ~ndimage.binary_erosion(main)))
    bins = int(np.clip(boundary // 2, 16, 180))  # about two boundary pixels per direction: no aliasing
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    px = (xs[:, None] + corners[None, :, 0]).ravel() - cx
    py = (ys[:, None] + corners[None, :, 1]).ravel() - cy
    angle = np.floor((np.arctan2(py, px) + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    radius = np.zeros(bins)
    np.maximum.at(radius, angle, np.hypot(px, py))
    if np.any(radius == 0):  # tiny outline: fill empty directions from neighbours
        good = radius > 0
        radius = np.interp(np.arange(bins), np.flatnonzero(good), radius[good], period=bins)
    radius = np.median(np.stack([np.roll(radius, -1), radius, np.roll(radius, 1)]), axis=0)  # pixel-step noise
    theta = (np.arange(bins) + 0.5) / bins * 2 * np.pi - np.pi
    x, y = radius * np.cos(theta), radius * np.sin(theta)
    poly_area = 0.5 * abs(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    perimeter = np.sum(np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y))
    circularity = float(min(1.0, 4 * np.pi * poly_area / max(perimeter, 1e-9) ** 2))
    return area, circularity, np.array([cx, cy]) * pixel_mm


def sector_masks(size_px: int, fov_mm: float, center_mm: np.ndarray, nasal_sign: float) -> dict:
    """sector -> [H, W] bool for the sectors reported at this field (see module docstring)."""
    pixel_mm = fov_mm / size_px
    c = (np.arange(size_px) + 0.5) * pixel_mm
    dx, dy = c[None, :] - center_mm[0], c[:, None] - center_mm[1]
    r = np.hypot(dx, dy)
    quadrant = _quadrant_map(dx, dy, nasal_sign)
    rings = [("parafoveal", CENTRAL_RADIUS_MM, PARAFOVEAL_RADIUS_MM)]
    if fov_mm >= PERIFOVEAL_MIN_FOV_MM:
        rings.append(("perifoveal", PARAFOVEAL_RADIUS_MM, PERIFOVEAL_RADIUS_MM))
    out = {"central": (r < CENTRAL_RADIUS_MM, math.pi * CENTRAL_RADIUS_MM**2)}
    for ring, lo, hi in rings:
        for q, name in enumerate(QUADRANTS):
            out[f"{name} {ring}"] = ((r >= lo) & (r < hi) & (quadrant == q), math.pi * (hi**2 - lo**2) / 4)
    return {name: mask for name, (mask, nominal) in out.items() if mask.sum() * pixel_mm**2 >= MIN_SECTOR_COVERAGE * nominal}


def _bbox_rel(bbox, size_px: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = bbox
    scale = 1000.0 / size_px
    return (int(round(x0 * scale)), int(round(y0 * scale)), int(round((x1 + 1) * scale)), int(round((y1 + 1) * scale)))


def measure(
    *,
    image: np.ndarray,
    vessel_mask: np.ndarray,
    faz_mask: np.ndarray,
    findings: list[dict],
    fov_mm: float,
    nasal_sign: float,
    tortuosity_index: float,
) -> Measured:
    """The one builder of ``Measured`` (host side, numpy)."""
    image = np.asarray(image, np.float32)
    vessel = np.asarray(vessel_mask, bool)
    size_px = int(image.shape[0])
    pixel_mm = fov_mm / size_px
    faz_area, circularity, center = faz_geometry(np.asarray(faz_mask, bool), pixel_mm)
    contrast = float(image[vessel].mean() - image[~vessel].mean()) if vessel.any() and (~vessel).any() else 0.0
    sectors = sector_masks(size_px, fov_mm, center, nasal_sign)
    sector_density = {name: 100.0 * float(vessel[mask].mean()) for name, mask in sectors.items()}
    lesions = []
    for f in findings:
        cx, cy = f["center_px"]
        dx, dy = (cx + 0.5) * pixel_mm - center[0], (cy + 0.5) * pixel_mm - center[1]
        lesions.append(
            Lesion(
                type=f["type"],
                sector=sector_of(dx, dy, nasal_sign),
                offset_mm=(float(dx), float(dy)),
                area_mm2=float(f["area_mm2"]),
                bbox_px=tuple(int(v) for v in f["bbox_px"]),
                bbox_rel=_bbox_rel(f["bbox_px"], size_px),
            )
        )
    return Measured(
        fov_mm=float(fov_mm),
        size_px=size_px,
        laterality="OD" if nasal_sign > 0 else "OS",
        contrast=contrast,
        faz_area_mm2=faz_area,
        faz_circularity=circularity,
        faz_offset_mm=float(np.hypot(*(center - 0.5 * fov_mm))),
        density_pct=100.0 * float(vessel.mean()),
        sector_density_pct=sector_density,
        lesions=tuple(lesions),
        tortuosity_index=float(tortuosity_index),
    )


def host_graph(graph):
    """The segment geometry of one fetched sample's graph, in float64 (what host measures read; the
    colonisation trees' tortuosity paths also follow ``parent`` and ``radius_um``)."""
    from types import SimpleNamespace

    return SimpleNamespace(start_mm=np.asarray(graph.start_mm, np.float64), end_mm=np.asarray(graph.end_mm, np.float64),
                           valid=np.asarray(graph.valid, bool), parent=np.asarray(graph.parent),
                           radius_um=np.asarray(graph.radius_um, np.float64))


def measure_sample(sample_np, cfg: SimConfig) -> Measured:
    """``Measured`` of one simulated sample whose arrays are on the host (``jax.device_get`` of a
    ``simulate`` result, unbatched).

    The tortuosity index is recomputed here in float64 from the graph: the device's float32 value
    can differ in its last bit between batch layouts (e.g. a batch split over two devices), and it
    reaches the text and the export's metadata."""
    from ..pathology import findings_to_list, tortuosity_index

    return measure(
        image=sample_np.image,
        vessel_mask=sample_np.masks["vessel"],
        faz_mask=sample_np.masks["faz"],
        findings=findings_to_list(sample_np.lesions.findings),
        fov_mm=cfg.field.fov_mm,
        nasal_sign=float(sample_np.anatomy.nasal_sign),
        tortuosity_index=float(tortuosity_index(host_graph(sample_np.anatomy.graph), cfg, xp=np)),
    )


def to_dict(m: Measured) -> dict:
    """JSON-ready form of ``m`` (the export stores it in a record's metadata as ``measured``)."""
    return dataclasses.asdict(m)


def from_dict(d: dict) -> Measured:
    lesions = tuple(
        Lesion(type=l["type"], sector=l["sector"], offset_mm=tuple(l["offset_mm"]), area_mm2=float(l["area_mm2"]),
               bbox_px=tuple(l["bbox_px"]), bbox_rel=tuple(l["bbox_rel"]))
        for l in d.get("lesions", ())
    )
    return Measured(**{**d, "lesions": lesions, "sector_density_pct": dict(d.get("sector_density_pct", {}))})
