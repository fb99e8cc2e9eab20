"""Morphology of the large-vessel masks, synthetic against real, and a mask two-sample test (C2ST).

    python benchmarks/vessel_morphology.py --real ../shared/data/octa500            # both fields
    python benchmarks/vessel_morphology.py --real ../shared/data/octa500 --quick    # a few minutes
    python benchmarks/vessel_morphology.py --real ../shared/data/octa500 --architecture colonisation
    python benchmarks/vessel_morphology.py --real ../shared/data/octa500 --half fit   # what a fit may look at

Synthetic masks are the ``large_vessel`` masks `svr generate` writes for the default presets (fitted
parameters, default per-sample variability, normal stage), seed ``--seed``; real ones are OCTA-500's
manual large-vessel labels of the selected eyes (``--disease``, default NORMAL) of one half of the
committed split (``--half``: ``heldout`` by default, the eyes no tree setting was fitted on; ``fit``: the
eyes ``benchmarks/fit_trees.py`` fits on; ``all``: every eye; ``svr_jax.split``). Every mask is first
put in right-eye orientation (a left eye, from labels.csv or the sample's laterality, is mirrored), so
"nasal" is always +x. The fovea is taken at the field centre for both (OCTA-500 scans are centred on it).

Per mask: the area fraction overall, by eccentricity ring (fractions of the half side) and by sector
(nasal, temporal, superior, inferior); from the skeleton (scikit-image), branch points (junctions of
three) and crossing points (four or more branches meeting within a vessel width) per mm², the lengths
of the segments between junctions and ends, the calibre (twice the distance to the background along
the skeleton); the orientation of the vessels relative to the direction to the fovea by eccentricity
(mean |cos|: 1 = pointing at the fovea, 0 = running around it); the distance from each pixel to the
nearest vessel (95th percentile and maximum, mm).

On the synthetic graphs (the first 24 eyes), the exact crossings between large tree segments of the same
kind and of an artery and a vein (``graph_crossings``): real masks have no A/V labels to count them on.

The C2ST: logistic regression and boosted trees over those measurements, and a small CNN on the masks
(128 × 128 px), each scored by 5-fold cross-validated balanced accuracy; ``mask_c2st_<field>`` is the
highest of the three (0.5: indistinguishable, 1: always told apart). Each measure's own separation is
printed too (the ROC AUC of that one measure, real vs synthetic, folded to >= 0.5, worst first): what
gives the masks away. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

FIELDS = {"3mm": (3.0, 304), "6mm": (6.0, 400)}
RINGS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)  # eccentricity ring edges, fractions of the half side
SECTORS = ("nasal", "temporal", "superior", "inferior")
CNN_SIZE = 128


# ----------------------------------------------------------------------------------------- masks
def real_masks(folder: Path, fov: str, disease: str, limit: int | None, half: str = "heldout"):
    """[N, H, W] bool manual large-vessel masks in right-eye orientation, of the eyes of one ``half`` of
    the committed split ("fit", "heldout"; "all": every eye)."""
    from svr_jax.split import select

    fov_mm, _ = FIELDS[fov]
    rows = select(list(csv.DictReader(open(folder / "labels.csv", newline=""))), None if half == "all" else half)
    rows = [r for r in rows
            if abs(float(r["scan_mm"]) - fov_mm) < 1e-6 and (disease.upper() == "ALL" or r["disease"].strip().upper() == disease.upper())]
    rows = rows[:limit] if limit else rows
    masks = []
    for r in rows:
        m = np.asarray(Image.open(folder / r["large_vessel_mask"]).convert("L")) > 127
        masks.append(m[:, ::-1] if r["eye"].strip().upper() == "OS" else m)
    return np.stack(masks)


def mask_renderer(cfg):
    """jit(vmap(f)): (params, sample keys [B]) -> ([B, H, W] bool ``large_vessel`` masks, [B] nasal sign).

    The same keys, per-sample parameters and anatomy as ``simulate`` (healthy): the sample key splits
    into the growth key and the appearance key, and the large-vessel mask is the trees' hard mask. Only
    the trees are rendered (the masks do not depend on the meshes or the appearance), which saves the
    compile and run time of the full image. ``params`` is traced: new values reuse the compiled program."""
    import jax

    import svr_jax as svr
    from svr_jax.variability import default_variability, per_sample_params

    variability = default_variability()

    def one(params, key):
        p = per_sample_params(key, params, variability)
        anatomy = svr.grow(jax.random.split(key)[0], p, cfg)
        _, _, hard = svr.render_signal(anatomy.graph, cfg, p, trees_only=True)
        return hard[..., 2] > 0, anatomy.nasal_sign

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def preset_tree_config(fov: str, architecture: str | None = None):
    """The preset's static config (with ``architecture`` if given) and parameters, as `svr generate` uses them."""
    from svr_jax.presets import preset_params

    return preset_params(fov, architecture)


def synthetic_masks(fov: str, n: int, seed: int, batch: int = 16, architecture: str | None = None,
                    render=None, params=None):
    """[N, H, W] bool ``large_vessel`` masks as `svr generate fov=<fov> seed=<seed>` writes them, mirrored
    to right-eye orientation, and the fraction of right eyes. ``render``/``params``: a ``mask_renderer``
    and the parameters to use instead of the preset's (the tree fit's candidates)."""
    import jax.numpy as jnp

    import svr_jax as svr

    if render is None or params is None:
        cfg, preset = preset_tree_config(fov, architecture)
        render = render or mask_renderer(cfg)
        params = preset if params is None else params
    masks, right = [], []
    for start in range(0, n, batch):
        lv, sign = (np.asarray(x) for x in render(params, svr.sample_keys(seed, jnp.arange(start, start + batch))))
        for i in range(min(batch, n - start)):
            masks.append(lv[i] if sign[i] > 0 else lv[i][:, ::-1])
            right.append(sign[i] > 0)
    return np.stack(masks), float(np.mean(right))


def graph_crossings(cfg, params, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per synthetic eye (the keys and per-sample parameters of ``mask_renderer``), the proper crossings
    between two large tree segments (diameter >= 15 µm, as the mask) of the same kind, and of an artery
    and a vein: counted on the graph, exactly, where the skeleton's count also takes two close branch
    points for a crossing."""
    import jax
    import jax.numpy as jnp

    import svr_jax as svr
    from svr_jax.colonisation import segments_cross
    from svr_jax.growth import tree_groups
    from svr_jax.simulate import LARGE_VESSEL_MIN_DIAMETER_UM
    from svr_jax.variability import default_variability, per_sample_params

    stop = tree_groups(cfg)[-1].stop

    def one(key):
        g = svr.grow(jax.random.split(key)[0], per_sample_params(key, params, default_variability()), cfg).graph
        return g.start_mm[:stop], g.end_mm[:stop], g.kind[:stop], g.valid[:stop] & (2 * g.radius_um[:stop] >= LARGE_VESSEL_MIN_DIAMETER_UM)

    start, end, kind, use = (np.asarray(x) for x in jax.jit(jax.vmap(one))(svr.sample_keys(seed, jnp.arange(n))))
    same, av = [], []
    for i in range(n):
        idx = np.flatnonzero(use[i])
        s, e, k = start[i][idx], end[i][idx], kind[i][idx]
        hit = np.triu(np.asarray(segments_cross(s[:, None], e[:, None], s[None], e[None], eps=1e-12)), 1)
        same.append(int(np.sum(hit & (k[:, None] == k[None]))))
        av.append(int(np.sum(hit & (k[:, None] != k[None]))))
    return np.array(same), np.array(av)


# ----------------------------------------------------------------------------------- measurements
def _geometry(size: int, fov_mm: float):
    px_mm = fov_mm / size
    c = (np.arange(size) + 0.5) * px_mm - 0.5 * fov_mm
    yy, xx = np.meshgrid(c, c, indexing="ij")
    ecc = np.hypot(xx, yy) / (0.5 * fov_mm)
    sector = np.where(np.abs(yy) > np.abs(xx), np.where(yy < 0, 2, 3), np.where(xx > 0, 0, 1))
    return px_mm, xx, yy, ecc, sector


def _neighbours(skel: np.ndarray) -> np.ndarray:
    return ndimage.convolve(skel.astype(np.int32), np.ones((3, 3), np.int32), mode="constant") - skel


def junctions(skel: np.ndarray, merge_px: float):
    """Branch points and crossings: clusters of junction pixels (>= 3 skeleton neighbours) merged within
    ``merge_px`` (a crossing of two thick vessels skeletonises into two nearby three-way junctions), each
    classed by how many skeleton branches leave it (3: branch point, >= 4: crossing)."""
    junction = skel & (_neighbours(skel) >= 3)
    r = max(1, int(round(merge_px)))
    disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
    grown = ndimage.binary_dilation(junction, disk)
    labels, n = ndimage.label(grown, np.ones((3, 3)))
    ring = ndimage.binary_dilation(grown, np.ones((5, 5))) & ~grown & skel
    ring_labels, _ = ndimage.label(ring, np.ones((3, 3)))
    # Which cluster each ring piece touches: the cluster label under it, grown by 2 px.
    owner = ndimage.grey_dilation(labels, size=(5, 5))
    degree = np.zeros(n + 1, int)
    pieces = np.unique(np.stack([owner[ring], ring_labels[ring]], 1), axis=0) if ring.any() else np.zeros((0, 2), int)
    np.add.at(degree, pieces[:, 0], 1)
    degree = degree[1:]
    return int(np.sum(degree == 3)), int(np.sum(degree >= 4)), grown


def _orientation(mask: np.ndarray, sigma_px: float):
    """Unit vessel direction at each pixel: the structure tensor's least-varying axis."""
    from skimage.feature import structure_tensor

    arr, arc, acc = structure_tensor(mask.astype(float), sigma=sigma_px, order="rc")  # rows = y, cols = x
    # Eigenvector of the smaller eigenvalue of [[acc, arc], [arc, arr]] in (x, y).
    theta = 0.5 * np.arctan2(2 * arc, acc - arr)  # dominant gradient direction
    return -np.sin(theta), np.cos(theta)


def measure_mask(mask: np.ndarray, fov_mm: float) -> dict:
    size = mask.shape[0]
    px_mm, xx, yy, ecc, sector = _geometry(size, fov_mm)
    area_mm2 = fov_mm**2
    out = {"area": float(mask.mean())}
    for lo, hi in zip(RINGS[:-1], RINGS[1:]):
        sel = (ecc >= lo) & (ecc < hi)
        out[f"area_ring_{lo:g}_{hi:g}"] = float(mask[sel].mean())
    for i, name in enumerate(SECTORS):
        out[f"area_{name}"] = float(mask[(sector == i) & (ecc < 1.0)].mean())
    skel = skeletonize(mask)
    dist_in = ndimage.distance_transform_edt(mask)
    calibre_um = 2.0 * dist_in[skel] * px_mm * 1000.0
    merge_px = max(2.0, float(np.median(dist_in[skel])) * 2.0 if skel.any() else 2.0)
    branches, crossings, grown = junctions(skel, merge_px)
    out["branch_per_mm2"] = branches / area_mm2
    out["crossing_per_mm2"] = crossings / area_mm2
    out["crossings"] = float(crossings)
    pieces, n_pieces = ndimage.label(skel & ~grown, np.ones((3, 3)))
    lengths_mm = ndimage.sum_labels(np.ones_like(pieces), pieces, np.arange(1, n_pieces + 1)) * px_mm if n_pieces else np.zeros(1)
    out["segments_per_mm2"] = n_pieces / area_mm2
    out["skeleton_mm_per_mm2"] = float(skel.sum()) * px_mm / area_mm2
    for q in (25, 50, 90):
        out[f"segment_len_p{q}_mm"] = float(np.percentile(lengths_mm, q))
    cal = calibre_um if calibre_um.size else np.zeros(1)
    for q in (10, 50, 90):
        out[f"calibre_p{q}_um"] = float(np.percentile(cal, q))
    vx, vy = _orientation(mask, sigma_px=2.0 * size / 304)
    rx, ry = -xx, -yy
    rn = np.hypot(rx, ry) + 1e-9
    cos = np.abs(vx * rx + vy * ry) / rn
    for lo, hi in zip(RINGS[:-1], RINGS[1:]):
        sel = skel & (ecc >= lo) & (ecc < hi)
        out[f"radial_cos_{lo:g}_{hi:g}"] = float(cos[sel].mean()) if sel.sum() >= 5 else 0.5
    gap_mm = ndimage.distance_transform_edt(~mask) * px_mm
    out["gap_p95_mm"] = float(np.percentile(gap_mm, 95))
    out["gap_max_mm"] = float(gap_mm.max())
    return out


def measure_all(masks: np.ndarray, fov_mm: float):
    rows = [measure_mask(m, fov_mm) for m in masks]
    names = list(rows[0])
    return names, np.array([[r[k] for k in names] for r in rows])


# ------------------------------------------------------------------------------------------- C2ST
def univariate_auc(f_real: np.ndarray, f_syn: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    """(measure, ROC AUC of that measure alone, real vs synthetic, folded to >= 0.5), worst first."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.zeros(len(f_real)), np.ones(len(f_syn))])
    x = np.concatenate([f_real, f_syn])
    auc = [(n, float(roc_auc_score(y, x[:, j]))) for j, n in enumerate(names)]
    return sorted(((n, max(a, 1.0 - a)) for n, a in auc), key=lambda t: -t[1])


def feature_c2st(x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    models = dict(logreg=make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
                  boosted=HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=seed))
    return {k: float(cross_val_score(m, x, y, cv=cv, scoring="balanced_accuracy").mean()) for k, m in models.items()}


def _downsample(masks: np.ndarray) -> np.ndarray:
    import torch

    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    return torch.nn.functional.interpolate(t, size=(CNN_SIZE, CNN_SIZE), mode="area").numpy()


def cnn_c2st(masks: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> float:
    """5-fold balanced accuracy of a small CNN trained from scratch on the (downsampled) masks."""
    import torch
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    torch.manual_seed(seed)
    x_all = torch.from_numpy(_downsample(masks))
    y_all = torch.from_numpy(y.astype(np.float32))
    scores = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(masks, y):
        layers, ch = [], 1
        for out_ch in (16, 32, 64, 64):
            layers += [torch.nn.Conv2d(ch, out_ch, 3, stride=2, padding=1), torch.nn.BatchNorm2d(out_ch), torch.nn.ReLU()]
            ch = out_ch
        net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(ch, 1))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
        weight = torch.tensor(float((y[train] == 0).sum() / max(1, (y[train] == 1).sum())))
        for _ in range(epochs):
            net.train()
            for idx in torch.randperm(len(train)).split(32):
                xb, yb = x_all[train][idx], y_all[train][idx]
                flip = torch.rand(len(idx)) < 0.5  # superior/inferior mirror: not a cue
                xb = torch.where(flip[:, None, None, None], xb.flip(2), xb)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb)[:, 0], yb, pos_weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            pred = (net(x_all[test])[:, 0] > 0).numpy().astype(int)
        scores.append(balanced_accuracy_score(y[test], pred))
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------- main
def run_field(fov: str, args) -> dict:
    fov_mm, _ = FIELDS[fov]
    t0 = time.time()
    real = real_masks(Path(args.real), fov, args.disease, args.n_real, args.half)
    n_syn = args.n_syn or len(real)
    cfg, params = preset_tree_config(fov, args.architecture)
    syn, right = synthetic_masks(fov, n_syn, args.seed, render=mask_renderer(cfg), params=params)
    same_kind, av = graph_crossings(cfg, params, min(n_syn, 24), args.seed)
    t_gen = time.time() - t0
    names, f_real = measure_all(real, fov_mm)
    _, f_syn = measure_all(syn, fov_mm)
    x = np.concatenate([f_real, f_syn])
    y = np.concatenate([np.zeros(len(real), int), np.ones(len(syn), int)])
    scores = feature_c2st(x, y, args.seed)
    scores["cnn"] = cnn_c2st(np.concatenate([real, syn]), y, args.seed, args.epochs) if args.epochs else float("nan")
    print(f"\n== {fov}: {len(real)} real ({args.disease}, {args.half} half), {len(syn)} synthetic (seed {args.seed}, right eyes {right:.2f});"
          f" masks in {t_gen:.0f} s")
    print(f"{'measure':28s} {'real mean':>10s} {'[p5, p95]':>20s} {'synthetic':>10s} {'[p5, p95]':>20s}")
    for j, name in enumerate(names):
        r, s = f_real[:, j], f_syn[:, j]
        print(f"{name:28s} {r.mean():10.4f} [{np.percentile(r, 5):8.4f},{np.percentile(r, 95):8.4f}] "
              f"{s.mean():10.4f} [{np.percentile(s, 5):8.4f},{np.percentile(s, 95):8.4f}]")
    print(f"graph crossings per synthetic eye (first {len(av)}), p5/median/p95: same kind "
          f"{np.percentile(same_kind, [5, 50, 95])}, artery-vein {np.percentile(av, [5, 50, 95])}")
    print("C2ST balanced accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    separation = univariate_auc(f_real, f_syn, names)
    print("one measure alone, ROC AUC real vs synthetic (worst first): "
          + ", ".join(f"{n} {a:.2f}" for n, a in separation))
    col = {n: j for j, n in enumerate(names)}
    med = lambda f, n: float(np.median(f[:, col[n]]))  # noqa: E731
    return {
        f"mask_c2st_{fov}": float(np.nanmax(list(scores.values()))),
        **{f"c2st_{k}_{fov}": v for k, v in scores.items()},
        f"crossings_per_image_real_{fov}": [float(np.percentile(f_real[:, col["crossings"]], q)) for q in (5, 50, 95)],
        f"crossings_per_image_syn_{fov}": [float(np.percentile(f_syn[:, col["crossings"]], q)) for q in (5, 50, 95)],
        f"graph_crossings_same_kind_syn_{fov}": [float(np.percentile(same_kind, q)) for q in (5, 50, 95)],
        f"graph_crossings_av_syn_{fov}": [float(np.percentile(av, q)) for q in (5, 50, 95)],
        f"gap_p95_mm_real_{fov}": med(f_real, "gap_p95_mm"),
        f"gap_p95_mm_syn_{fov}": med(f_syn, "gap_p95_mm"),
        f"gap_max_mm_real_{fov}": med(f_real, "gap_max_mm"),
        f"gap_max_mm_syn_{fov}": med(f_syn, "gap_max_mm"),
        f"area_real_{fov}": med(f_real, "area"),
        f"area_syn_{fov}": med(f_syn, "area"),
        f"branch_per_mm2_real_{fov}": med(f_real, "branch_per_mm2"),
        f"branch_per_mm2_syn_{fov}": med(f_syn, "branch_per_mm2"),
        f"calibre_p90_um_real_{fov}": med(f_real, "calibre_p90_um"),
        f"calibre_p90_um_syn_{fov}": med(f_syn, "calibre_p90_um"),
        f"worst_measures_{fov}": [[n, round(a, 3)] for n, a in separation[:5]],
        f"n_real_{fov}": len(real),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True, help="OCTA-500-style folder with labels.csv and large_vessel masks")
    ap.add_argument("--fields", default="3mm,6mm")
    ap.add_argument("--half", choices=("heldout", "fit", "all"), default="heldout",
                    help="real eyes of this half of the committed split (svr_jax/data/octa500_split.json)")
    ap.add_argument("--disease", default="NORMAL", help="real eyes' diagnosis in labels.csv (ALL: every eye)")
    ap.add_argument("--n-real", type=int, default=None, help="at most this many real masks per field")
    ap.add_argument("--n-syn", type=int, default=None, help="synthetic masks per field (default: as many as real)")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--epochs", type=int, default=25, help="CNN epochs per fold (0: no CNN)")
    ap.add_argument("--architecture", choices=("colonisation", "branching"), default=None,
                    help="the trees' growth (GrowthConfig.architecture); default: the preset's")
    ap.add_argument("--quick", action="store_true", help="at most 60 masks of each kind per field, 12 CNN epochs")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_real = min(args.n_real or 60, 60)
        args.epochs = min(args.epochs, 12)
    result = {}
    for fov in args.fields.split(","):
        result.update(run_field(fov, args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
