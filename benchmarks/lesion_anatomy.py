"""Do the DR lesions follow the anatomy? Figures measured on rendered samples of every stage.

    python benchmarks/lesion_anatomy.py                          # 3 mm, both tree architectures
    python benchmarks/lesion_anatomy.py --n 8 --fov 3mm 6mm --png /tmp/stages

Per architecture (``GrowthConfig.architecture``) and field, ``--n`` samples of each stage at the same keys:

* non-perfusion: fraction of the large-vessel mask pixels inside non-perfusion areas that keep their
  signal (noise-free superficial signal >= half the median of large-vessel pixels outside), the ratio of
  the image there to large vessels outside, the capillary-mask density inside the areas over that
  outside them, the areas' solidity (area / convex hull) and circularity 4πA/P², and their mean distance
  to the artery mask over that of the rest of the field (> 1: placed away from arterioles);
* microaneurysms: distance of each centre to the axis of the nearest surviving superficial capillary,
  over the MA's minor radius (<= 1: the capillary runs through the dilation);
* IRMA and NV: closest approach of each lesion's vessel to the wall of a surviving arteriole/venule (µm,
  <= 0: it grows from that vessel);
* FAZ: the text's circularity of the FAZ mask (``text.measure.faz_geometry``), the raw-outline
  acircularity P²/4πA, and capillary-skeleton end points within 40 µm of the FAZ per mm of its border;
* the tortuosity index (the text's ``increased`` threshold is ``text.measure.TORTUOSITY_INCREASED``).

``--png DIR``: one sheet per architecture/field, stages left to right (image, then lesion outlines).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

STAGE_NAMES = ("normal", "mild", "moderate", "severe", "pdr")


def point_segment_distance_mm(points, start, end):
    """[P, N] distance of points [P, 2] to segments [N, 2] -> [N, 2]."""
    d = end - start
    t = np.clip(np.einsum("pnk,nk->pn", points[:, None] - start[None], d) / np.maximum(np.sum(d * d, -1), 1e-12), 0, 1)
    closest = start[None] + t[..., None] * d[None]
    return np.linalg.norm(points[:, None] - closest, axis=-1)


def sample_figures(s, d, cfg) -> dict:
    """Figures of one sample (host arrays): ``s`` a Sample, ``d`` its Disease."""
    from scipy import ndimage
    from skimage import measure as skm
    from skimage.morphology import skeletonize

    from svr_jax.graph import CAPILLARY
    from svr_jax.text.measure import faz_geometry

    px_mm = cfg.field.pixel_um / 1000.0
    m, lm = s.masks, s.lesions.masks
    out: dict = {}
    npm = lm["nonperfusion"]
    large = m["large_vessel"]
    outside = large & ~npm
    inside = large & npm
    if inside.sum() and outside.sum():
        ref = np.median(s.signal[outside])
        out["lv_px_in_np"] = int(inside.sum())
        out["lv_keep"] = float(np.mean(s.signal[inside] >= 0.5 * ref))
        out["lv_image_ratio"] = float(s.image[inside].mean() / s.image[outside].mean())
    if npm.sum():
        rest = ~npm & ~m["faz"]
        out["capillary_in_np_ratio"] = float(m["capillary"][npm].mean() / max(m["capillary"][rest].mean(), 1e-9))
        if m["artery"].any():
            dist = ndimage.distance_transform_edt(~m["artery"]) * px_mm
            out["np_artery_distance_ratio"] = float(dist[npm].mean() / dist[rest].mean())
        labels = np.where(npm, s.lesions.instance, 0)
        for p in skm.regionprops(labels):
            if p.area >= 20:
                out.setdefault("np_solidity", []).append(float(p.solidity))
                out.setdefault("np_circularity", []).append(float(4 * np.pi * p.area / max(p.perimeter, 1e-9) ** 2))
    g = s.anatomy.graph
    valid, kind = np.asarray(g.valid), np.asarray(g.kind)
    cap = valid & (kind == CAPILLARY)
    ma = d.microaneurysms
    if ma.present.any() and cap.any():
        c = ma.center_mm[ma.present]
        dist = point_segment_distance_mm(c, g.start_mm[cap], g.end_mm[cap]).min(1) * 1000.0
        out["ma_axis_over_radius"] = list(map(float, dist / ma.radius_um[ma.present]))
    tree = valid & (kind < CAPILLARY)
    for name in ("irma", "neovascularization"):
        t = getattr(d, name)
        seg = t.segments
        per = seg.capacity // t.capacity
        for i in np.flatnonzero(t.present):
            pts = np.concatenate([seg.start_mm[i * per : (i + 1) * per], seg.end_mm[i * per : (i + 1) * per]])
            wall = point_segment_distance_mm(pts, g.start_mm[tree], g.end_mm[tree]) * 1000.0 - g.radius_um[tree][None]
            out.setdefault(f"{name}_gap_um", []).append(float(wall.min()))
    faz = m["faz"]
    area, circ, _ = faz_geometry(faz, px_mm)
    out["faz_circularity"] = circ
    lab, n = ndimage.label(faz)
    if n:
        main = lab == 1 + int(np.argmax(ndimage.sum_labels(faz, lab, np.arange(1, n + 1))))
        perim = skm.perimeter(main) * px_mm
        out["faz_acircularity"] = float(perim**2 / (4 * np.pi * main.sum() * px_mm**2))
        skel = skeletonize(np.array(m["vessel"], bool))
        nbrs = ndimage.convolve(skel.astype(int), np.ones((3, 3), int), mode="constant") - 1
        ends = skel & (nbrs == 1)
        band = ndimage.binary_dilation(main, iterations=max(1, int(round(0.04 / px_mm)))) & ~main
        out["faz_end_points_per_mm"] = float(ends[band].sum() / max(perim, 1e-9))
    out["tortuosity_index"] = float(s.lesions.measures["tortuosity_index"])
    return out


def sheet(samples, path: Path) -> None:
    from PIL import Image
    from scipy import ndimage

    tiles = []
    colours = dict(nonperfusion=(1, 0.35, 0), irma=(0, 1, 0), neovascularization=(1, 0, 1), microaneurysm=(1, 1, 0))
    for s in samples:
        img = np.clip(s.image, 0, 1)
        rgb = np.stack([img] * 3, -1)
        for name, colour in colours.items():
            mask = s.lesions.masks[name]
            rgb[mask & ~ndimage.binary_erosion(mask)] = colour
        tiles.append(np.concatenate([np.stack([img] * 3, -1), rgb], 0))
    Image.fromarray((np.concatenate(tiles, 1) * 255).astype(np.uint8)).save(path)


def summarise(rows: list[dict]) -> dict:
    out = {}
    keys = sorted({k for r in rows for k in r})
    for k in keys:
        vals = []
        for r in rows:
            if k in r:
                vals.extend(r[k] if isinstance(r[k], list) else [r[k]])
        if not vals:
            continue
        v = np.asarray(vals, float)
        out[k] = dict(mean=round(float(v.mean()), 4), median=round(float(np.median(v)), 4), max=round(float(v.max()), 4),
                      min=round(float(v.min()), 4), n=int(v.size))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=12, help="samples per stage")
    parser.add_argument("--fov", nargs="+", default=["3mm"])
    parser.add_argument("--architecture", nargs="+", default=["branching", "colonisation"])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import svr_jax as svr
    from svr_jax.presets import preset_params
    from svr_jax.runtime import enable_compilation_cache
    from svr_jax.simulate import grow_diseased, simulate
    from svr_jax.text.measure import TORTUOSITY_INCREASED

    enable_compilation_cache()
    result = dict(seed=args.seed, n_per_stage=args.n, tortuosity_increased=TORTUOSITY_INCREASED)
    for fov in args.fov:
        for arch in args.architecture:
            t0 = time.perf_counter()
            cfg, params = preset_params(fov, arch)
            run = jax.jit(jax.vmap(lambda k, st: (simulate(k, params, cfg, st), grow_diseased(k, params, cfg, st)[1])))
            keys = svr.sample_keys(args.seed, jnp.arange(args.n))
            per_stage, firsts = {}, []
            for stage, name in enumerate(STAGE_NAMES):
                samples, diseases = jax.device_get(run(keys, jnp.full(args.n, stage, jnp.int32)))
                rows = []
                for i in range(args.n):
                    s, d = jax.tree.map(lambda a: a[i], samples), jax.tree.map(lambda a: a[i], diseases)
                    rows.append(sample_figures(s, d, cfg))
                    if i == 0:
                        firsts.append(s)
                per_stage[name] = summarise(rows)
                ti = np.array([r["tortuosity_index"] for r in rows])
                per_stage[name]["tortuosity_increased_fraction"] = float(np.mean(ti >= TORTUOSITY_INCREASED))
            if args.png:
                args.png.mkdir(parents=True, exist_ok=True)
                sheet(firsts, args.png / f"stages_{arch}_{fov}.png")
            result[f"{arch}_{fov}"] = per_stage
            print(f"{arch} {fov}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
