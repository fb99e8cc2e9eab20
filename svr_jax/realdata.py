"""Loading a folder of real en-face OCTA images, with validation that names the offending file.

Two layouts are accepted:

* **With ``labels.csv``** (the OCTA-500 layout): one row per eye with at least the columns ``id``,
  ``scan_mm``, ``disease`` and ``image`` (a path relative to the folder); ``large_vessel_mask`` is
  optional. Rows are filtered by scan size and disease; only the listed images are read.
* **Without ``labels.csv``**: every file directly in the folder is an image (subfolders are not
  searched). Hidden files and ``README*`` files are ignored; any other file that is not a PNG, JPEG,
  TIFF or BMP image is an error, never a silent skip. Without labels there is no disease filter.

Pixel formats: 8-bit grey (``L``) is read as value / 255. Documented conversions: an RGB(A) or palette
image whose colour channels are all equal (grey saved as colour) and whose alpha, if any, is opaque is
read as its grey channel. Errors: a true-colour image, a 16-bit or 32-bit image (scale it to 8 bits
first: this loader will not guess the intended range), a 1-bit image (looks like a mask), a truncated or
unreadable file, and images of different sizes in one set.

``half``: "fit" or "heldout" keeps only that half of the committed split of the development eyes
(``svr_jax.split``), before any image is read; None reads every selected row.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
IGNORED_PREFIXES = (".", "README", "readme")
LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("id", "scan_mm", "disease", "image")


def default_octa500_dir() -> Path:
    """Where the benchmarks and tests look for OCTA-500 unless told: ``$SVR_OCTA500``, else
    ``../shared/data/octa500`` beside the checkout (the data is never inside it)."""
    return Path(os.environ.get("SVR_OCTA500", Path(__file__).resolve().parents[2] / "shared" / "data" / "octa500"))


@dataclasses.dataclass(frozen=True)
class RealSet:
    images: np.ndarray  # [N, H, W] float32 in [0, 1]
    ids: tuple[str, ...]
    paths: tuple[Path, ...]
    diseases: tuple[str, ...]  # "" where the folder has no labels
    large_vessel_masks: np.ndarray | None  # [N, H, W] bool, where labels.csv lists them for every row

    def __len__(self) -> int:
        return len(self.ids)


def read_grey(path: Path) -> np.ndarray:
    """One image -> [H, W] float32 in [0, 1]; ValueError naming the file for anything else."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                raise ValueError(
                    f"{path}: {mode} image (16/32-bit); this loader reads 8-bit grey only: scale it to 8 bits "
                    "(e.g. PIL: Image.fromarray((a / a.max() * 255).astype('uint8'))) so that the range is your choice"
                )
            if mode == "1":
                raise ValueError(f"{path}: 1-bit image (a mask?); expected an 8-bit grey OCTA projection")
            if mode == "L":
                return np.asarray(im, np.float32) / 255.0
            if mode == "LA":
                arr = np.asarray(im)
                if arr[..., 1].min() < 255:
                    raise ValueError(f"{path}: grey image with a transparent alpha channel; expected 8-bit grey")
                return arr[..., 0].astype(np.float32) / 255.0
            if mode in ("RGB", "RGBA", "P"):
                arr = np.asarray(im.convert("RGBA" if mode != "RGB" else "RGB"))
                if arr.shape[-1] == 4 and arr[..., 3].min() < 255:
                    raise ValueError(f"{path}: colour image with a transparent alpha channel; expected 8-bit grey")
                rgb = arr[..., :3]
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise ValueError(
                        f"{path}: colour ({mode}) image with different channels; OCTA projections are grey: convert it "
                        "to 8-bit grey ('L') yourself (grey saved as RGB is converted automatically)"
                    )
                return rgb[..., 0].astype(np.float32) / 255.0
            raise ValueError(f"{path}: unsupported image mode {mode!r}; expected 8-bit grey ('L')")
    except ValueError:
        raise
    except (OSError, SyntaxError) as error:  # PIL: truncated, corrupt or not an image at all
        raise ValueError(f"{path}: cannot read image ({' '.join(str(error).split()) or type(error).__name__})") from None


def _read_labels(folder: Path) -> list[dict]:
    path = folder / LABELS_FILE
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; need {list(REQUIRED_COLUMNS)}")
        return list(reader)


def _normalise_diseases(disease) -> set[str] | None:
    if disease is None:
        return None
    names = [disease] if isinstance(disease, str) else list(disease)
    names = {n.strip().upper() for n in names if n.strip()}
    return None if not names or "ALL" in names else names


def list_images(folder: str | Path, *, scan_mm: float | None = None, disease="NORMAL", half: str | None = None) -> list[dict]:
    """The selected rows: dicts with id, image (Path), disease, mask (Path or None); ``half``: one half
    of the split (``svr_jax.split.select``)."""
    from .split import select

    rows = select(_list_all(folder, scan_mm=scan_mm, disease=disease), half)
    if not rows:
        raise ValueError(f"{folder}: no images of the {half} half of the split with disease {disease} and scan_mm {scan_mm}")
    return rows


def _list_all(folder: str | Path, *, scan_mm: float | None, disease) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise OSError(f"real data folder {str(folder)!r} does not exist or is not a directory")
    wanted = _normalise_diseases(disease)
    if (folder / LABELS_FILE).is_file():
        rows = _read_labels(folder)
        known = sorted({r["disease"].strip().upper() for r in rows})
        if wanted is not None and not wanted & set(known):
            raise ValueError(f"{folder / LABELS_FILE}: no rows with disease {sorted(wanted)}; present: {known}")
        selected = []
        for row in rows:
            if wanted is not None and row["disease"].strip().upper() not in wanted:
                continue
            if scan_mm is not None and abs(float(row["scan_mm"]) - float(scan_mm)) > 1e-6:
                continue
            image = folder / row["image"]
            if not image.is_file():
                raise ValueError(f"{folder / LABELS_FILE}: image {str(image)!r} of id {row['id']} does not exist")
            mask = row.get("large_vessel_mask") or None
            mask_path = folder / mask if mask else None
            if mask_path is not None and not mask_path.is_file():
                raise ValueError(f"{folder / LABELS_FILE}: large-vessel mask {str(mask_path)!r} of id {row['id']} does not exist")
            selected.append(dict(id=str(row["id"]), image=image, disease=row["disease"].strip().upper(), mask=mask_path))
        if not selected:
            raise ValueError(
                f"{folder / LABELS_FILE}: no images with disease {sorted(wanted) if wanted else 'any'} "
                f"and scan_mm {scan_mm if scan_mm is not None else 'any'}"
            )
        return selected
    if wanted is not None and wanted != {"NORMAL"}:
        raise ValueError(f"{folder}: no {LABELS_FILE}, so images cannot be filtered by disease {sorted(wanted)}")
    entries = sorted(folder.iterdir())
    selected = []
    for path in entries:
        if path.is_dir() or path.name.startswith(IGNORED_PREFIXES):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"{path}: not an image file (expected {', '.join(IMAGE_SUFFIXES)}); move it out of the folder "
                f"or list the images in a {LABELS_FILE}"
            )
        selected.append(dict(id=path.stem, image=path, disease="", mask=None))
    if not selected:
        subdirs = [p.name for p in entries if p.is_dir()]
        hint = f" (subfolders are not searched: {subdirs})" if subdirs else ""
        raise ValueError(f"{folder}: no images found{hint}; expected {', '.join(IMAGE_SUFFIXES)} files or a {LABELS_FILE}")
    return selected


def load_folder(folder: str | Path, *, scan_mm: float | None = None, disease="NORMAL", size_px: int | None = None,
                limit: int | None = None, half: str | None = None) -> RealSet:
    """Read and validate the selected images (see the module docstring).

    ``size_px``: when given, every image must be that size (the simulator's field); otherwise all
    images must merely share one size. ``limit``: read only the first ``limit`` selected rows.
    ``half``: "fit" / "heldout" of the split, or None (every row).
    """
    rows = list_images(folder, scan_mm=scan_mm, disease=disease, half=half)
    if limit is not None:
        rows = rows[: max(1, int(limit))]
    images, masks = [], []
    first_shape, first_path = None, None
    for row in rows:
        image = read_grey(row["image"])
        if first_shape is None:
            first_shape, first_path = image.shape, row["image"]
        if image.shape != first_shape:
            raise ValueError(
                f"{row['image']}: size {image.shape[1]}x{image.shape[0]} px differs from {first_path} "
                f"({first_shape[1]}x{first_shape[0]} px); one set must have one size (filter by scan_mm)"
            )
        if image.shape[0] != image.shape[1]:
            raise ValueError(f"{row['image']}: {image.shape[1]}x{image.shape[0]} px is not square")
        if size_px is not None and image.shape[0] != size_px:
            raise ValueError(f"{row['image']}: {image.shape[0]} px, but the simulator field is {size_px} px (check fov= or size_px=)")
        images.append(image)
        if row["mask"] is not None:
            masks.append(read_grey(row["mask"]) > 0.5)
    return RealSet(
        images=np.stack(images),
        ids=tuple(r["id"] for r in rows),
        paths=tuple(r["image"] for r in rows),
        diseases=tuple(r["disease"] for r in rows),
        large_vessel_masks=np.stack(masks) if len(masks) == len(rows) else None,
    )
