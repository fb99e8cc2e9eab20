"""The image layers of one sample, encoded once with Pillow: thumbnail, and one sprite PNG holding the
mask overlays, the lesion instances and the ETDRS sector map.

The page stacks the sprite's bands as CSS backgrounds: no canvas, whose pixels a page opened from
``file://`` may not read, and one file a sample instead of a dozen (file count dominates a large site).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from ..text.measure import faz_geometry, sector_masks

# mask name -> (label, group, colour); groups order the toggles on the sample page.
LAYER_STYLE = {
    "vessel": ("Vessels", "vessels", "#00e5ff"),
    "capillary": ("Capillaries", "vessels", "#43a047"),
    "large_vessel": ("Large vessels", "vessels", "#fdd835"),
    "artery": ("Arteries", "arteries / veins", "#ff1744"),
    "vein": ("Veins", "arteries / veins", "#2979ff"),
    "faz": ("FAZ", "FAZ", "#ff00ff"),
    "nonperfusion": ("Non-perfusion", "lesions", "#ff9100"),
    "microaneurysm": ("Microaneurysms", "lesions", "#ffea00"),
    "neovascularization": ("Neovascularization", "lesions", "#00e676"),
    "irma": ("IRMA", "lesions", "#d500f9"),
}
OTHER_COLOURS = ("#80deea", "#ffab91", "#c5e1a5", "#b39ddb")
# Instances: a qualitative palette (Tableau 10) cycled over connected components.
INSTANCE_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
                    "#bab0ac")
SECTOR_LINE_ALPHA = 230
SECTOR_NAMED_ALPHA = 80  # fill of the sectors the text names
SPRITE_COMPRESS_LEVEL = 1  # zlib: level 1 encodes 3x faster than 6 for ~50% more sprite bytes (~55 vs 36 KB at 304 px)


def style(name: str, position: int = 0) -> tuple[str, str, str]:
    return LAYER_STYLE.get(name, (name.replace("_", " ").capitalize(), "other", OTHER_COLOURS[position % len(OTHER_COLOURS)]))


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def thumbnail_jpeg(image_png: bytes, size_px: int) -> bytes:
    image = Image.open(io.BytesIO(image_png)).convert("L")
    image = image.resize((size_px, size_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


def instance_labels(lesion_masks: dict) -> tuple[np.ndarray, int]:
    """[H, W] int label (0 background) of every connected component of every lesion mask, and the count."""
    labels, total = None, 0
    for mask in lesion_masks.values():
        components, n = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3)))
        if labels is None:
            labels = np.zeros(components.shape, np.int32)
        labels = np.where(components > 0, components + total, labels)
        total += n
    return (labels if labels is not None else np.zeros((1, 1), np.int32)), total


def sector_layout(faz_mask: np.ndarray, fov_mm: float, nasal_sign: float) -> dict:
    """sector -> [H, W] bool: the text's own sectors (``text.measure.sector_masks``) around the measured
    FAZ centre (``text.measure.faz_geometry``), as the text was measured."""
    faz = np.asarray(faz_mask) > 0
    size_px = faz.shape[0]
    _, _, centre_mm = faz_geometry(faz, fov_mm / size_px)
    return sector_masks(size_px, fov_mm, centre_mm, nasal_sign)


class Sprite:
    """All overlays of one sample as bands of a single palette PNG (one file, one encode): band k is
    rows [k·H, (k+1)·H); palette entry 0 is transparent, the others carry their own alpha (tRNS), so the
    page shows band k as a CSS background without any pixel work."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.bands: list[np.ndarray] = []
        self.palette: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]

    def _colour(self, colour: str, alpha: int = 255) -> int:
        entry = (*rgb(colour), alpha)
        if entry not in self.palette:
            self.palette.append(entry)
        return self.palette.index(entry)

    def mask(self, mask: np.ndarray, colour: str) -> None:
        self.bands.append(np.where(np.asarray(mask) > 0, self._colour(colour), 0).astype(np.uint8))

    def instances(self, labels: np.ndarray) -> None:
        codes = np.asarray([0] + [self._colour(c) for c in INSTANCE_COLOURS], np.uint8)
        labels = np.broadcast_to(labels, self.shape)
        self.bands.append(codes[np.where(labels > 0, (labels - 1) % len(INSTANCE_COLOURS) + 1, 0)])

    def sectors(self, layout: dict, named: set) -> None:
        """Sector outlines, and a fill over the sectors in ``named`` (those the text names)."""
        label = np.zeros(self.shape, np.int16)
        band = np.zeros(self.shape, np.uint8)
        fill, line = self._colour("#ffeb3b", SECTOR_NAMED_ALPHA), self._colour("#ffffff", SECTOR_LINE_ALPHA)
        for k, (name, mask) in enumerate(layout.items(), start=1):
            label[mask] = k
            if name in named:
                band[mask] = fill
        edge = np.zeros(self.shape, bool)
        edge[:, 1:] |= label[:, 1:] != label[:, :-1]
        edge[1:, :] |= label[1:, :] != label[:-1, :]
        band[edge] = line
        self.bands.append(band)

    def png(self) -> bytes:
        image = Image.fromarray(np.concatenate(self.bands, axis=0), mode="P")
        image.putpalette([v for entry in self.palette for v in entry[:3]])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", transparency=bytes(entry[3] for entry in self.palette), compress_level=SPRITE_COMPRESS_LEVEL)
        return buffer.getvalue()


def centroid_fraction(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of a mask's centroid as a fraction of the image (pixel centres)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (float(xs.mean() + 0.5) / w, float(ys.mean() + 0.5) / h)
