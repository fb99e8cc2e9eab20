"""Make docs/img/stages_3mm.png: one row per DR stage (3 mm preset), with a lesion overlay per row.

    python scripts/make_stages.py [--preset 3mm] [--columns 4] [--seed 0]

One compiled program renders every stage (the stage is a traced per-sample array). The last tile of a
row outlines the lesions of the row's first image: yellow non-perfusion, red microaneurysms, green
neovascularization, cyan IRMA.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

import svr_jax as svr
from svr_jax.io import to_uint8

COLOURS = dict(nonperfusion=(255, 210, 0), microaneurysm=(255, 40, 40), neovascularization=(40, 255, 40), irma=(0, 220, 255))
TITLES = ("normal", "mild NPDR", "moderate NPDR", "severe NPDR", "PDR")


def outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3mm")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img" / "stages_3mm.png"))
    args = parser.parse_args()
    from svr_jax.presets import preset_params

    cfg, params = preset_params(args.preset)  # the fitted preset `svr generate` uses
    n_stages, cols = len(svr.STAGES), args.columns
    stages = jnp.repeat(jnp.arange(n_stages, dtype=jnp.int32), cols)
    keys = svr.sample_keys(args.seed, jnp.arange(n_stages * cols))
    run = jax.jit(jax.vmap(lambda k, s: svr.simulate(k, params, cfg, s)))
    batch = jax.device_get(run(keys, stages))
    tile, label_w = 200, 110
    sheet = Image.new("RGB", (label_w + (cols + 1) * tile, n_stages * tile), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for row in range(n_stages):
        draw.text((6, row * tile + tile // 2 - 6), TITLES[row], fill=(255, 255, 255))
        for col in range(cols):
            i = row * cols + col
            image = Image.fromarray(to_uint8(batch.image[i])).resize((tile, tile), Image.BILINEAR).convert("RGB")
            sheet.paste(image, (label_w + col * tile, row * tile))
        first = row * cols
        rgb = np.repeat(to_uint8(batch.image[first])[..., None], 3, -1)
        for name, colour in COLOURS.items():
            mask = np.asarray(batch.lesions.masks[name][first])
            rgb[outline(mask) if name == "nonperfusion" else mask] = colour
        sheet.paste(Image.fromarray(rgb).resize((tile, tile), Image.NEAREST), (label_w + cols * tile, row * tile))
    draw.text((label_w + cols * tile + 4, 2), "lesions of col. 1", fill=(255, 255, 255))
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
