"""Writing samples to disk: 8-bit PNGs for images and masks, JSON metadata, contact sheets."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a float image in [0, 1] (8-bit grey) or a boolean mask (0/255)."""
    array = np.asarray(array)
    pixels = array.astype(np.uint8) * 255 if array.dtype == bool else to_uint8(array)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def contact_sheet(images: list[np.ndarray], *, columns: int = 8, tile_px: int = 152, labels: list[str] | None = None) -> Image.Image:
    """A grid of thumbnails (float images in [0, 1]); optional caption per tile."""
    rows = max(1, math.ceil(len(images) / columns))
    cols = min(columns, max(1, len(images)))
    sheet = Image.new("L", (cols * tile_px, rows * tile_px), 0)
    for i, image in enumerate(images):
        tile = Image.fromarray(to_uint8(image)).resize((tile_px, tile_px), Image.BILINEAR)
        sheet.paste(tile, ((i % cols) * tile_px, (i // cols) * tile_px))
    if labels:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(sheet)
        for i, label in enumerate(labels):
            draw.text(((i % cols) * tile_px + 3, (i // cols) * tile_px + 2), label, fill=255)
    return sheet


def nearest_existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(out: Path) -> None:
    """Raise OSError naming the folder if ``out`` cannot be created or written; creates nothing."""
    if out.exists() and not out.is_dir():
        raise OSError(f"output path {str(out)!r} exists and is not a directory")
    parent = nearest_existing_parent(out)
    if not parent.is_dir():
        raise OSError(f"output directory {str(out)!r} cannot be created: {str(parent)!r} is not a directory")
    # A real probe (permission bits say nothing for root, nor for read-only or virtual file systems).
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".svr-probe-", dir=parent))
    except OSError as error:
        raise OSError(f"output directory {str(out)!r} is not writable ({error.strerror} in {str(parent)!r})") from None
