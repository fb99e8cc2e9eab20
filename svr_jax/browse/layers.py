"""The image layers of one sample, encoded once with Pillow: thumbnail, mask overlays, lesion
instances and the ETDRS sector map.

A mask overlay is a 2-colour palette PNG (transparent background, one opaque colour), so the page
stacks plain ``<img>`` elements: no canvas, whose pixels a page opened from ``file://`` may not read.
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
SECTOR_LINE_RGBA = (255, 255, 255, 230)
SECTOR_NAMED_RGBA = (255, 235, 59, 80)  # fill of the sectors the text names


def style(name: str, position: int = 0) -> tuple[str, str, str]:
    return LAYER_STYLE.get(name, (name.replace("_", " ").capitalize(), "other", OTHER_COLOURS[position % len(OTHER_COLOURS)]))


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, **options)
    return buffer.getvalue()


def thumbnail_jpeg(image_png: bytes, size_px: int) -> bytes:
    image = Image.open(io.BytesIO(image_png)).convert("L")
    image = image.resize((size_px, size_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


def mask_png(mask: np.ndarray, colour: str) -> bytes:
    """[H, W] mask -> palette PNG: 0 transparent, nonzero in ``colour``."""
    image = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, *rgb(colour)])
    return png(image, transparency=0)


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


def instances_png(labels: np.ndarray) -> bytes:
    """Each instance in its own palette colour (cycled), background transparent."""
    index = np.where(labels > 0, (labels - 1) % len(INSTANCE_COLOURS) + 1, 0).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette([0, 0, 0] + [v for c in INSTANCE_COLOURS for v in rgb(c)])
    return png(image, transparency=0)


def sector_layout(faz_mask: np.ndarray, fov_mm: float, nasal_sign: float) -> dict:
    """sector -> [H, W] bool: the text's own sectors (``text.measure.sector_masks``) around the measured
    FAZ centre (``text.measure.faz_geometry``), as the text was measured."""
    faz = np.asarray(faz_mask) > 0
    size_px = faz.shape[0]
    _, _, centre_mm = faz_geometry(faz, fov_mm / size_px)
    return sector_masks(size_px, fov_mm, centre_mm, nasal_sign)


def sector_map_png(layout: dict, named: set) -> bytes:
    """Sector outlines, and a fill over the sectors in ``named`` (those the text names)."""
    shape = next(iter(layout.values())).shape if layout else (1, 1)
    label = np.zeros(shape, np.int16)
    rgba = np.zeros((*shape, 4), np.uint8)
    for k, (name, mask) in enumerate(layout.items(), start=1):
        label[mask] = k
        if name in named:
            rgba[mask] = SECTOR_NAMED_RGBA
    edge = np.zeros(shape, bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    rgba[edge] = SECTOR_LINE_RGBA
    return png(Image.fromarray(rgba, mode="RGBA"))


def centroid_fraction(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of a mask's centroid as a fraction of the image (pixel centres)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (float(xs.mean() + 0.5) / w, float(ys.mean() + 0.5) / h)
