"""README figure of the vessel architecture: synthetic masks and images of both fields and both eyes.

    python scripts/make_vessel_figure.py            # docs/img/vessels_3mm.png, docs/img/vessels_6mm.png

Per field: two right eyes (OD) and two left eyes (OS) of the preset with the space-colonisation trees
(GrowthConfig.architecture = "colonisation"; seed 777, the default variability). The top row is the artery (red) and vein (blue) masks, with large
vessels at full brightness and thinner ones dimmed. The bottom row is the image. Synthetic only: no
real image goes into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

import svr_jax as svr
from svr_jax.batch import batched_simulator
from svr_jax.presets import preset_params
from svr_jax.variability import default_variability


def eyes(fov: str, seed: int, per_eye: int = 2, batch: int = 8):
    cfg, params = preset_params(fov)
    cfg = dataclasses.replace(cfg, growth=dataclasses.replace(cfg.growth, architecture="colonisation"))
    run = batched_simulator(cfg, variability=default_variability())
    out = run(svr.sample_keys(seed, jnp.arange(batch)), params)
    sign = np.asarray(out.anatomy.nasal_sign)
    picked = list(np.flatnonzero(sign > 0)[:per_eye]) + list(np.flatnonzero(sign < 0)[:per_eye])
    tiles = []
    for i in picked:
        a, v, lv = (np.asarray(out.masks[k][i]) for k in ("artery", "vein", "large_vessel"))
        rgb = np.zeros(a.shape + (3,), np.uint8)
        level = np.where(lv, 255, 90).astype(np.uint8)
        rgb[..., 0] = np.where(a, level, 0)
        rgb[..., 2] = np.where(v, level, 0)
        rgb[..., 1] = np.where(a & v, level // 2, 0)
        grey = (np.asarray(out.image[i]) * 255).astype(np.uint8)
        tiles.append((rgb, np.repeat(grey[..., None], 3, -1), "OD" if sign[i] > 0 else "OS"))
    return tiles


def sheet(tiles, fov: str) -> Image.Image:
    pad = 4
    size = tiles[0][0].shape[0]
    width = len(tiles) * (size + pad) + pad
    canvas = Image.new("RGB", (width, 2 * (size + pad) + pad + 18), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for j, (mask, image, eye) in enumerate(tiles):
        x = pad + j * (size + pad)
        draw.text((x + 4, 3), f"{fov} {eye}", fill=(230, 230, 230))
        canvas.paste(Image.fromarray(mask), (x, 18))
        canvas.paste(Image.fromarray(image), (x, 18 + size + pad))
    return canvas


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--seed", type=int, default=777)
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for fov in ("3mm", "6mm"):
        path = Path(args.out) / f"vessels_{fov}.png"
        sheet(eyes(fov, args.seed), fov).save(path, optimize=True)
        print(path)


if __name__ == "__main__":
    main()
