"""Vessel statistics of generated healthy samples next to a real OCTA-500 folder.

    python benchmarks/vessel_stats.py --n 256 --real ../shared/data/octa500/OCTA_3mm/images

Synthetic (from the masks and image of each sample): FAZ area (mm²), large-vessel area fraction
(vessels >= 15 µm wide), image mean and std. Real: image mean and std over the folder; large-vessel
fraction from the sibling ``large_vessel/`` masks when present; FAZ area from OCTA-500's ground-truth
FAZ masks (``extra_ground_truth/*_GT_FAZ.png`` beside the scan-size folder) when present. Writes a PNG
with real and synthetic images side by side. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

import svr_jax as svr

RANGES = dict(faz_area_mm2=(0.15, 0.45), large_vessel_fraction=(0.044, 0.094))


def synthetic_stats(preset: str, n: int, batch: int, seed: int):
    from svr_jax.presets import preset_params

    cfg, params = preset_params(preset)  # the fitted preset `svr generate` uses
    run = jax.jit(lambda keys, p: svr.simulate_batch(keys, p, cfg))
    rows, images = [], []
    for start in range(0, n, batch):
        out = run(svr.sample_keys(seed, jnp.arange(start, start + batch)), params)
        stats = jax.device_get(out.stats)
        for i in range(min(batch, n - start)):
            rows.append({k: float(v[i]) for k, v in stats.items()})
        if len(images) < 4:
            images.extend(np.asarray(out.image[: 4 - len(images)]))
    return cfg, rows, images


def load_grey(path: Path) -> np.ndarray:
    image = np.asarray(Image.open(path))
    if image.ndim != 2:
        raise SystemExit(f"{path}: expected a single-channel image, got shape {image.shape}")
    return image.astype(np.float32) / np.iinfo(image.dtype).max


def real_stats(folder: Path, fov_mm: float):
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images in {folder}")
    images = [load_grey(p) for p in paths]
    out = dict(n=len(images), image_mean=float(np.mean([im.mean() for im in images])), image_std=float(np.mean([im.std() for im in images])))
    masks = [folder.parent / "large_vessel" / p.name for p in paths]
    masks = [m for m in masks if m.exists()]
    if masks:
        out["large_vessel_fraction"] = float(np.mean([(load_grey(m) > 0.5).mean() for m in masks]))
        out["large_vessel_masks"] = len(masks)
    size_mm = round(fov_mm)
    faz = sorted((folder.parent.parent / "extra_ground_truth").glob(f"{size_mm}mm_*_GT_FAZ.png"))
    if faz:
        px_mm2 = (fov_mm / images[0].shape[0]) ** 2
        out["faz_area_mm2"] = float(np.mean([(load_grey(m) > 0.5).sum() * px_mm2 for m in faz]))
        out["faz_masks"] = len(faz)
    return out, images[:4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3mm", choices=sorted(svr.config.PRESETS))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=Path, default=None, help="folder of real en-face PNGs (OCTA-500 layout)")
    parser.add_argument("--png", type=Path, default=Path("out/vessel_stats.png"))
    args = parser.parse_args()

    cfg, rows, syn_images = synthetic_stats(args.preset, args.n, min(args.batch, args.n), args.seed)
    keys = ("faz_area_mm2", "large_vessel_fraction", "image_mean", "image_std")
    synthetic = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    synthetic.update({f"{k}_min": float(np.min([r[k] for r in rows])) for k in RANGES})
    synthetic.update({f"{k}_max": float(np.max([r[k] for r in rows])) for k in RANGES})
    synthetic["n"] = len(rows)
    result = dict(preset=args.preset, synthetic=synthetic)
    real_images = []
    if args.real is not None:
        if not args.real.is_dir():
            raise SystemExit(f"--real {args.real}: not a folder")
        result["real"], real_images = real_stats(args.real, cfg.field.fov_mm)

    print(f"{'statistic':24s} {'synthetic':>10s} {'real':>10s}")
    for k in keys:
        real = result.get("real", {}).get(k)
        print(f"{k:24s} {synthetic[k]:10.4f} {real if real is None else format(real, '10.4f'):>10}")
    checks = {f"{k}_in_range": RANGES[k][0] <= synthetic[k] <= RANGES[k][1] for k in RANGES}
    if "real" in result:
        for k in ("image_mean", "image_std"):
            checks[f"{k}_within_25pct"] = abs(synthetic[k] - result["real"][k]) <= 0.25 * result["real"][k]
    result["checks"] = checks

    tiles = [np.asarray(Image.fromarray((np.clip(im, 0, 1) * 255).astype(np.uint8)).resize((304, 304))) for im in real_images + syn_images]
    if tiles:
        n_real = len(real_images)
        rows_png = [np.concatenate(tiles[:n_real], 1)] if n_real else []
        rows_png.append(np.concatenate(tiles[n_real:], 1))
        width = max(r.shape[1] for r in rows_png)
        rows_png = [np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows_png]
        args.png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows_png, 0)).save(args.png)
        result["png"] = str(args.png)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
