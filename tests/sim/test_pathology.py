"""Diabetic-retinopathy operators and staging (issue #3): the Must-show checks and the conventions.

The population checks (1,000 healthy, 500 mixed under `make test-all`; 100 each, the same assertions,
under `make test`) run at the real 3 mm geometry through the lesions-only
fast path, ``grow_diseased`` + ``render_lesions`` (the same keys, graph and lesion masks as
``simulate``, without rendering the vessels or the appearance model), so that the suite stays within
minutes on a CPU. Single-sample checks use the full renderer.
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import svr_jax as svr
from conftest import SMALL_BATCH
from svr_jax import cli, colonisation, pathology
from svr_jax.faz import Faz
from svr_jax.graph import CAPILLARY, VEIN
from svr_jax.pathology import _render as lesion_render
from svr_jax.pathology._findings import SLOT_OFFSETS
from svr_jax.pathology._microaneurysm import MAX_MICROANEURYSMS
from svr_jax.pathology._regions import signed_depth_mm
from svr_jax.simulate import fits_windows, grow_diseased, pixel_centers_mm, render_signal, segment_groups, simulate

CFG_3MM = svr.preset("3mm")
PARAMS_3MM = svr.default_params(CFG_3MM)
ONLY_HEALTHY = pathology.PathologyConfig("mixed", mixture=(1.0, 0.0, 0.0, 0.0, 0.0))  # stage 0 via the traced path
MIXED = pathology.PathologyConfig("mixed")
FOUR = np.ones((3, 3), bool) * np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
EIGHT = np.ones((3, 3), bool)


@functools.lru_cache(maxsize=None)
def _lesions_program(cfg):
    def one(key, params, weights):
        _, disease = grow_diseased(key, params, cfg, weights)
        return pathology.render_lesions(disease, cfg, params)[1]

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def lesions_only(cfg, params, pcfg):
    """jit(vmap) of the lesions-only fast path: keys [B] -> Lesions [B]; the stage setting is an argument
    (one program for every setting)."""
    weights = jnp.asarray(pathology.stage_weights(pcfg))
    return lambda keys: _lesions_program(cfg)(keys, params, weights)


def run_batches(fn, n: int, batch: int, seed: int = 0):
    out = []
    for start in range(0, n, batch):
        lesions = fn(svr.sample_keys(seed, jnp.arange(start, start + batch)))
        out.append(jax.device_get(dict(masks=lesions.masks, instance=lesions.instance, stage=lesions.stage,
                                       label_dr=lesions.label_dr, findings=dataclasses.asdict(lesions.findings))))
    return jax.tree.map(lambda *a: np.concatenate(a)[:n], *out)


@pytest.fixture(scope="module", params=[pytest.param(500, marks=pytest.mark.slow), 100], ids=lambda n: f"n{n}")
def mixed_500(request):
    return run_batches(lesions_only(CFG_3MM, PARAMS_3MM, MIXED), request.param, 100)


def first(batch):
    """Sample 0 of a batch, on the host."""
    return jax.tree.map(lambda a: np.asarray(a)[0], jax.device_get(batch))


# --- Must show ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [pytest.param(1000, marks=pytest.mark.slow), 100])
def test_1000_healthy_samples_have_no_lesion_pixel(n):
    """1,000 samples whose stage the (traced) sampler set to normal: every lesion mask is empty."""
    got = run_batches(lesions_only(CFG_3MM, PARAMS_3MM, ONLY_HEALTHY), n, 100 if n % 100 == 0 else n, seed=7)
    assert np.all(got["stage"] == 0) and not np.any(got["label_dr"])
    for name in pathology.LESION_NAMES:
        assert got["masks"][name].shape == (n, 304, 304)
        assert int(got["masks"][name].sum()) == 0, name
    assert int(np.count_nonzero(got["instance"])) == 0
    assert not np.any(got["findings"]["present"])


def test_microaneurysm_count_equals_connected_components(mixed_500):
    masks, findings = mixed_500["masks"]["microaneurysm"], mixed_500["findings"]
    is_ma = findings["type"] == pathology.LESION_NAMES.index("microaneurysm")
    counts = np.sum(findings["present"] & is_ma, -1)
    print(f"microaneurysms in {len(counts)} mixed samples: {counts.sum()} (max {counts.max()} per sample)")
    assert counts.sum() > 2 * len(counts)  # the check is not vacuous
    for i in range(len(counts)):
        for structure in (FOUR, EIGHT):
            assert ndimage.label(masks[i], structure=structure)[1] == counts[i], (i, counts[i])


def test_healthy_samples_of_a_mixed_batch_have_no_lesion(mixed_500):
    healthy = mixed_500["stage"] == 0
    n = len(healthy)  # mixture weight 0.4: within 4.5 binomial sds (500: 150 .. 250)
    assert abs(healthy.sum() - 0.4 * n) < 4.5 * np.sqrt(0.24 * n)
    for name in pathology.LESION_NAMES:
        assert not mixed_500["masks"][name][healthy].any()


def test_complete_dropout_removes_capillaries_and_reports_area():
    """Same key, with and without the operator: capillary area inside a depth-1 region falls >= 80 %."""
    cfg, params = CFG_3MM, PARAMS_3MM
    anatomy = jax.jit(lambda k: svr.grow(k, params, cfg))(jax.random.key(11))
    faz = anatomy.faz
    present = jnp.arange(6) == 0
    regions = pathology.make_regions(
        jnp.tile(faz.center_mm + jnp.array([0.75, 0.1]), (6, 1)), jnp.full(6, 0.3), 0.1 * jnp.ones((6, 4)),
        jnp.zeros((6, 4)), jnp.ones(6), present,
    )
    draw = jax.random.uniform(jax.random.key(1), (anatomy.graph.capacity,), maxval=0.9)
    dropped = pathology.dropout(anatomy.graph, regions, draw=draw)
    render = jax.jit(lambda g: (lambda out: (out[0], out[2] > 0))(render_signal(g, cfg, params)))
    (_, hard_before), (signal_after, hard_after) = jax.device_get((render(anatomy.graph), render(dropped)))
    before, after = hard_before[..., 3], hard_after[..., 3]

    disease = dataclasses.replace(pathology.healthy(jnp.int32(3), dropped, faz), regions=regions)
    _, lesions = jax.jit(lambda d: pathology.render_lesions(d, cfg, params))(disease)
    region = np.asarray(lesions.masks["nonperfusion"])
    fall = 1.0 - after[region].sum() / before[region].sum()
    print(f"capillary area inside the complete-dropout region: {before[region].sum()} -> {after[region].sum()} px, "
          f"fall {100 * fall:.1f} %")
    assert fall >= 0.8
    # Larger vessels pass through: no arteriole or venule of 15 µm or wider loses perfusion, and the
    # large-vessel pixels inside the area keep their mask and their signal; narrower ones inside are lost.
    graph = anatomy.graph
    tree = np.asarray(graph.kind) < CAPILLARY
    wide = tree & (2 * np.asarray(graph.radius_um) >= pathology.FLOW_KEEPING_DIAMETER_UM)
    np.testing.assert_array_equal(np.asarray(dropped.perfusion)[wide], np.asarray(graph.perfusion)[wide])
    midpoint = np.asarray(0.5 * (graph.start_mm + graph.end_mm))
    deep_inside = np.asarray(signed_depth_mm(regions, jnp.asarray(midpoint)))[0] > 0.05
    narrow_inside = tree & ~wide & np.asarray(graph.valid) & deep_inside
    assert narrow_inside.any() and not np.any(np.asarray(dropped.valid)[narrow_inside])
    # ... with their subtrees: every surviving tree segment still hangs from a surviving parent.
    for g in (graph, dropped):
        valid, parent = np.asarray(g.valid), np.asarray(g.parent)
        kept = tree & valid & (parent >= 0)
        assert np.all(valid[parent[kept]])
    large_in = hard_before[..., 2] & region
    outside = hard_after[..., 2] & ~region
    print(f"large-vessel pixels inside the area: {large_in.sum()}, keeping signal: "
          f"{np.mean(signal_after[large_in] >= 0.5 * np.median(signal_after[outside])):.3f}")
    assert large_in.sum() > 20
    np.testing.assert_array_equal(hard_after[..., 2][large_in], True)
    assert np.mean(signal_after[large_in] >= 0.5 * np.median(signal_after[outside])) > 0.95  # (edge pixels: partial)
    # The findings carry the measured area of the region: its mask's pixel count.
    px_mm2 = (cfg.field.pixel_um / 1000.0) ** 2
    np.testing.assert_allclose(float(lesions.findings.area_mm2[0]), region.sum() * px_mm2, rtol=1e-6)
    assert bool(lesions.findings.present[0]) and not np.any(np.asarray(lesions.findings.present[1:6]))
    # ... and its measured centre, relative to the FAZ centre, is where the region was put.
    np.testing.assert_allclose(np.asarray(lesions.findings.center_mm[0]), [0.75, 0.1], atol=0.03)


def assert_paths_span_the_fixed_length(graph, cfg):
    """The tortuosity index's paths are PATH_LENGTH_MM long (to within their last segment), whatever the
    growth step, on either architecture."""
    from svr_jax.pathology import _measure

    far, arc, whole = (np.asarray(a) for a in _measure.path_ends(graph, cfg))
    arc = arc[whole]
    print(f"{cfg.growth.architecture}: {whole.sum()} paths of {arc.min():.3f}-{arc.max():.3f} mm")
    assert whole.sum() > 10
    assert np.all(arc >= _measure.PATH_LENGTH_MM) and np.all(arc < _measure.PATH_LENGTH_MM + np.asarray(graph.length_mm()).max() + 1e-6)


def test_tortuosity_raises_the_arc_chord_index(branching_cfg, small_params):
    small_cfg = branching_cfg  # the fixed tree layout's per-branch waves (warp_tortuosity: the test below)
    graph = jax.jit(lambda k: svr.grow(k, small_params, small_cfg).graph)(jax.random.key(5))
    n = pathology.branch_tortuosity(graph, small_cfg)[0].shape[0]
    bent = pathology.tortuosity(graph, small_cfg, amplitude=jnp.full(n, 0.08), half_waves=jnp.full(n, 2.0))
    before, whole = pathology.branch_tortuosity(graph, small_cfg)
    after, _ = pathology.branch_tortuosity(bent, small_cfg)
    before, after, whole = np.asarray(before)[whole], np.asarray(after)[whole], np.asarray(whole)[whole]
    print(f"tortuosity index: {before.mean():.4f} -> {after.mean():.4f} over {whole.sum()} branches")
    assert after.mean() > before.mean() + 0.01
    assert np.mean(after > before) > 0.9
    assert float(pathology.tortuosity_index(bent, small_cfg)) > float(pathology.tortuosity_index(graph, small_cfg))
    assert_paths_span_the_fixed_length(bent, small_cfg)
    # Branch ends (bifurcations) stay put: the tree stays connected.
    idx = pathology._measure.branch_index(small_cfg)
    np.testing.assert_allclose(np.asarray(bent.start_mm)[idx[:, 0]], np.asarray(graph.start_mm)[idx[:, 0]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(bent.end_mm)[idx[:, -1]], np.asarray(graph.end_mm)[idx[:, -1]], atol=1e-6)


def test_warp_tortuosity_bends_colonisation_trees_and_keeps_them_connected(colonisation_cfg, small_params):
    small_cfg = colonisation_cfg
    graph = jax.jit(lambda k: svr.grow(k, small_params, small_cfg).graph)(jax.random.key(5))
    bent = jax.jit(lambda g: pathology.warp_tortuosity(g, small_cfg, amplitude=0.06, direction=jnp.array([0.3, 1.4, 2.6]),
                                                       phase=jnp.array([0.0, 1.0, 2.0]), wavelength_mm=0.4))(graph)
    before, whole = pathology.branch_tortuosity(graph, small_cfg)
    after, _ = pathology.branch_tortuosity(bent, small_cfg)
    before, after = np.asarray(before)[np.asarray(whole)], np.asarray(after)[np.asarray(whole)]
    print(f"tortuosity index: {before.mean():.4f} -> {after.mean():.4f} over {len(before)} paths")
    assert len(before) > 50 and after.mean() > before.mean() + 0.005
    assert_paths_span_the_fixed_length(bent, small_cfg)
    # Every segment still starts where its parent ends: the trees stay connected.
    n = colonisation.capacity(small_cfg)
    parent, valid = np.asarray(bent.parent[:n]), np.asarray(bent.valid[:n])
    child = valid & (parent >= 0)
    np.testing.assert_allclose(np.asarray(bent.start_mm)[:n][child], np.asarray(bent.end_mm)[parent[child]], atol=1e-5)
    # ... and the windows still hold them.
    assert bool(jnp.all(~bent.valid | fits_windows(bent, small_cfg, diseased=True)))


def test_downstream_closure_equals_a_walk_up_the_parents():
    """The pointer-jumping closure of closed vessels' subtrees (fast path of the dropout) against the plain
    walk from each segment up its parents (oracle), on random forests of several depths."""
    from svr_jax.pathology._dropout import downstream

    rng = np.random.default_rng(0)
    chain = (np.arange(300) - 1, np.arange(300) == 2)  # one path 300 deep: every jump is needed
    forests = [(np.array([-1 if i == 0 or rng.random() < 0.05 else rng.integers(0, i) for i in range(n)]), rng.random(n) < 0.04)
               for n in (1, 7, 300)]
    for parent, closed in [chain, *forests]:
        n = len(parent)
        want = np.array([any(closed[j] for j in _ancestors_and_self(parent, i)) for i in range(n)])
        np.testing.assert_array_equal(np.asarray(downstream(jnp.asarray(closed), jnp.asarray(parent))), want)


def _ancestors_and_self(parent, i):
    while i >= 0:
        yield i
        i = parent[i]


def test_diffuse_rarefaction_removes_the_stage_fraction_of_capillaries_unevenly():
    """Diffuse loss (no region): about the requested fraction of capillaries is lost, more where the
    patchiness field is high; larger vessels and the (empty) regions are untouched."""
    from svr_jax.pathology import _dropout

    cfg, params = CFG_3MM, PARAMS_3MM
    graph = jax.jit(lambda k: svr.grow(k, params, cfg))(jax.random.key(5)).graph
    capillary = np.asarray(graph.valid & (graph.kind >= CAPILLARY))
    midpoint = 0.5 * (graph.start_mm + graph.end_mm)
    field = np.asarray(_dropout.patchiness(jax.random.key(2), midpoint))
    assert abs(field[capillary].mean() - 1.0) < 0.1 and field[capillary].std() > 0.4  # mean 1, uneven
    none = pathology.make_regions(jnp.zeros((6, 2)), jnp.full(6, 0.3), jnp.zeros((6, 4)), jnp.zeros((6, 4)), jnp.ones(6),
                                  jnp.zeros(6, bool))
    draw = jax.random.uniform(jax.random.key(1), (graph.capacity,), maxval=_dropout.MAX_DRAW)
    for loss in (0.1, 0.3):
        dropped = pathology.dropout(graph, none, draw=draw, diffuse=loss * _dropout.MAX_DRAW * jnp.asarray(field))
        lost = capillary & ~np.asarray(dropped.valid)
        high, low = capillary & (field > 1.3), capillary & (field < 0.7)
        print(f"capillary loss {loss}: lost {lost.sum() / capillary.sum():.3f} (high field {lost[high].mean():.3f}, "
              f"low {lost[low].mean():.3f})")
        assert abs(lost.sum() / capillary.sum() - loss) < 0.03
        assert lost[high].mean() > 2 * lost[low].mean()
        tree = np.asarray(graph.kind) < CAPILLARY
        np.testing.assert_array_equal(np.asarray(dropped.perfusion)[tree], np.asarray(graph.perfusion)[tree])
    # Zero loss leaves the graph exactly as it was (a normal eye).
    same = pathology.random_dropout(jax.random.key(3), graph, none, capillary_loss=0.0)
    np.testing.assert_array_equal(np.asarray(same.perfusion), np.asarray(graph.perfusion))


CONTINUOUS = ("faz_enlargement", "dropout_extent", "dropout_depth", "dropout_softness_mm", "rarefaction_gain", "ma_radius_um",
              "nv_size_mm", "nv_radius_um", "irma_length_mm", "irma_radius_um", "tortuosity_gain", "beading_gain", "lesion_signal")


def test_gradients_of_each_operator_are_finite_and_nonzero(small_batch, small_cfg, small_params):
    cfg = small_cfg
    weights = jax.random.uniform(jax.random.key(9), (cfg.field.size_px,) * 2)

    def statistic(pp, key):
        params = dataclasses.replace(small_params, pathology=pp)
        anatomy, disease = grow_diseased(key, params, cfg, "pdr")
        superficial, deep, _ = render_signal(anatomy.graph, cfg, params, diseased=True)
        lesion_signal, _ = pathology.render_lesions(disease, cfg, params)
        return jnp.mean(weights * (superficial + lesion_signal + 0.5 * deep))

    # A sample where every lesion type of the stage is present (the exporters' program, shared).
    findings = jax.device_get(small_batch("pdr", small_params, seed=0).lesions.findings)
    types = [np.any(findings.present & (findings.type == pathology.LESION_NAMES.index(name)), -1)
             for name in ("nonperfusion", "microaneurysm", "neovascularization", "irma")]
    key = svr.sample_keys(0, jnp.arange(SMALL_BATCH))[int(np.argmax(np.all(types, 0)))]
    assert np.any(np.all(types, 0))
    grads = jax.jit(jax.grad(statistic))(small_params.pathology, key)
    print("d statistic / d", {name: f"{float(getattr(grads, name)):.3g}" for name in CONTINUOUS})
    for name in CONTINUOUS:
        g = float(getattr(grads, name))
        assert np.isfinite(g) and g != 0.0, (name, g)


# --- conventions: twins, oracles, jit/vmap ----------------------------------------------------

def test_windowed_lesion_rendering_matches_dense_oracle():
    key = jax.random.key(3)
    k = jax.random.split(key, 8)
    size, pixel_um = 64, 10.0
    m = 12
    blobs = pathology.microaneurysms(
        jax.random.uniform(k[0], (m, 2), minval=-0.05, maxval=0.69), jnp.tile(jnp.array([0.6, 0.8]), (m, 1)),
        jax.random.uniform(k[1], (m,), minval=12.5, maxval=65.0), jax.random.uniform(k[2], (m,), minval=1.0, maxval=2.0),
        jnp.ones(m, bool), fov_mm=0.64, pixel_um=pixel_um,
    )
    window = lesion_render.blob_window(65.0, 2.0, pixel_um)
    signal, windows = lesion_render.render_blobs(blobs, size=size, pixel_um=pixel_um, window=window)
    ref_signal, ref_labels = lesion_render.render_blobs_dense(blobs, size=size, pixel_um=pixel_um)
    np.testing.assert_allclose(signal, ref_signal, atol=1e-4)
    np.testing.assert_array_equal(lesion_render.paint_labels(windows, size), ref_labels)

    tufts = pathology.neovascularization(jax.random.uniform(k[3], (4, 2), maxval=0.64), jnp.array([0.05, 0.1, 0.2, 0.15]),
                                         jnp.array([3.0, 5.0, 3.0, 5.0]), jnp.arange(4.0), jnp.full(4, 6.0), jnp.ones(4, bool))
    from svr_jax.pathology import _neovascularization as nv

    seg_k = lesion_render.segment_window(nv.max_segment_mm(), nv.MAX_RADIUS_UM, pixel_um, 0.75)
    lesion_k = lesion_render.lesion_window(nv.max_extent_mm(), nv.MAX_RADIUS_UM, pixel_um, 0.75)
    _, windows = lesion_render.render_tufts(tufts, 1.0, size=size, pixel_um=pixel_um, segment_k=seg_k, lesion_k=lesion_k, antialias_px=0.75)
    np.testing.assert_array_equal(lesion_render.paint_labels(windows, size),
                                  lesion_render.render_tufts_dense(tufts, size=size, pixel_um=pixel_um, antialias_px=0.75))


def test_region_windows_match_dense_masks():
    cfg = CFG_3MM
    faz = Faz(center_mm=jnp.array([1.5, 1.45]), radius_mm=jnp.array(0.3), amplitude=jnp.full(4, 0.05), phase=jnp.zeros(4))
    regions = pathology.random_regions(
        jax.random.key(2), faz, present=jnp.arange(6) < 5, radius_lo_mm=0.3,
        radius_hi_mm=0.6, depth_lo=1.0, depth_hi=1.0, fov_mm=3.0,
    )
    from svr_jax.pathology._regions import MAX_EXTENT_MM, region_masks

    window = lesion_render.region_window(MAX_EXTENT_MM, cfg.field.pixel_um)
    windows = lesion_render.render_regions(regions, size=304, pixel_um=cfg.field.pixel_um, window=window)
    dense = region_masks(regions, pixel_centers_mm(cfg))
    for r in range(6):
        one = windows._replace(corner=windows.corner[r : r + 1], inside=windows.inside[r : r + 1])
        np.testing.assert_array_equal(lesion_render.paint_labels(one, 304) > 0, dense[r])
    # The borders are ragged (capillary territories), not the smooth lobes of the harmonics alone.
    from skimage.measure import regionprops

    smooth = region_masks(dataclasses.replace(regions, noise_sd=jnp.zeros(6)), pixel_centers_mm(cfg))
    solidity = lambda masks: np.mean([regionprops(np.asarray(m, np.uint8))[0].solidity for m in masks[:5]])  # noqa: E731
    print(f"region solidity: smooth {solidity(smooth):.3f}, rough {solidity(dense):.3f}")
    assert solidity(dense) < solidity(smooth) - 0.04


def test_operators_jit_equals_no_jit_and_vmap_equals_loop(small_cfg, small_params):
    """Also the anatomy of the lesions, on the batched results: regions lie away from the arterioles,
    every MA sits on a surviving capillary, IRMA and NV start on a perfused tree vessel, and the FAZ's
    pruned fringe holds no capillary."""
    anatomy = jax.jit(lambda k: svr.grow(k, small_params, small_cfg))(jax.random.key(1))
    graph, faz = anatomy.graph, anatomy.faz
    n_tree = segment_groups(small_cfg)[-3].stop
    trees = graph.slice(0, n_tree)
    place = dict(present=jnp.arange(6) < 3, radius_lo_mm=0.1, radius_hi_mm=0.2, depth_lo=0.6, depth_hi=1.0, fov_mm=1.5)
    regions = pathology.random_regions(jax.random.key(4), faz, arterioles=trees, **place)

    def ops(key):
        g = pathology.random_dropout(key, graph, regions)
        g = pathology.prune_faz_border(g, faz, pathology._faz.random_fringe(key, band_mm=0.05))
        g = pathology.random_tortuosity(key, g, small_cfg, amplitude=0.05)
        ma = pathology.random_microaneurysms(key, g, faz, regions, present=jnp.arange(32) < 10, radius_um=20.0, radius_sd=0.3,
                                             border_fraction=0.7, fov_mm=1.5, pixel_um=small_cfg.field.pixel_um)
        irma = pathology.random_irma(key, regions, present=jnp.arange(4) < 3, length_mm=0.3, radius_um=8.0, fov_mm=1.5,
                                     vessels=g.slice(0, n_tree))
        nv = pathology.random_neovascularization(key, regions, present=jnp.arange(4) < 3, size_mm=0.09, radius_um=4.0, fov_mm=1.5,
                                                 faz_center_mm=faz.center_mm, nasal_sign=1.0, vessels=g.slice(0, n_tree))
        return ma, irma, nv, g

    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.jit(jax.vmap(ops))(keys)
    for i in range(2):
        eager = ops(keys[i])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6), batched, eager)

    from svr_jax.graph import ARTERY
    from svr_jax.pathology._anchor import closest_points_mm

    def gap_mm(points, g, usable):
        return np.asarray(closest_points_mm(jnp.asarray(points), g, jnp.asarray(usable))[1])

    # Non-perfusion between the arterioles: the kept centres are farther from them than plain draws.
    artery = np.asarray(trees.valid & (trees.kind == ARTERY))
    plain = pathology.random_regions(jax.random.key(4), faz, **place)
    far, near = (gap_mm(r.center_mm[:3], trees, artery) for r in (regions, plain))
    print(f"region centre to the nearest arteriole: {1000 * near.mean():.0f} -> {1000 * far.mean():.0f} µm")
    assert far.mean() > near.mean()
    for i in range(2):
        ma, irma, nv, g = jax.tree.map(lambda a: a[i], jax.device_get(batched))
        kind, valid = np.asarray(g.kind), np.asarray(g.valid)
        # Every MA is a dilation of a surviving capillary: its axis runs through the MA's ellipse.
        capillary = valid & (kind == CAPILLARY)
        on = gap_mm(ma.center_mm[ma.present], g, capillary) * 1000 / ma.radius_um[ma.present]
        assert ma.present.sum() >= 5 and np.all(on <= 0.7 + 1e-3), on
        # IRMA and NV start on a perfused tree vessel (their first point / the tuft's centre).
        tree = valid & (kind < CAPILLARY) & (np.arange(len(kind)) < n_tree) & (np.asarray(g.perfusion) > 0.5)
        irma_start = irma.segments.start_mm.reshape(4, -1, 2)[:, 0][irma.present]
        assert len(irma_start) == 3 and np.all(gap_mm(irma_start, g, tree) < 1e-4)
        t = np.linspace(0.0, 1.0, 16)[:, None, None]  # the tuft's polyline, densely: it passes through its centre
        seg = nv.segments
        for lesion in np.flatnonzero(nv.present):
            part = slice(lesion * nv.segments_per_lesion, (lesion + 1) * nv.segments_per_lesion)
            dense = (seg.start_mm[part][None] * (1 - t) + seg.end_mm[part][None] * t).reshape(-1, 2)
            assert gap_mm(dense, g, tree).min() < 0.002
        # The FAZ's pruned fringe: no superficial capillary piece left in it.
        fringe = pathology._faz.random_fringe(keys[i], band_mm=0.05)
        mid = 0.5 * (g.start_mm + g.end_mm)
        in_fringe = np.asarray((pathology.ragged_depth_mm(faz, fringe, jnp.asarray(mid)) > 0) & (faz.signed_depth_mm(jnp.asarray(mid)) <= 0))
        assert in_fringe[np.asarray(graph.valid) & (np.asarray(graph.kind) == CAPILLARY)].sum() > 5  # there were some
        assert not np.any(in_fringe & capillary)


def test_chain_composes_steps_in_order():
    calls = []

    def step(name):
        def apply(key, state):
            calls.append(name)
            return state + 1

        return apply

    assert pathology.chain(step("a"), step("b"), step("c"))(jax.random.key(0), 0) == 3
    assert calls == ["a", "b", "c"]


def test_diseased_trees_fit_their_windows_and_beading_dilates_veins(small_cfg, small_params):
    """Tortuosity is clipped to the static windows: even at its maximum it never makes the renderer drop a
    segment; beading alternately dilates and narrows venules."""
    graph = jax.jit(lambda k: svr.grow(k, small_params, small_cfg).graph)(jax.random.key(2))
    bent = pathology.random_tortuosity(jax.random.key(3), graph, small_cfg, amplitude=1.0)  # clipped to the maximum
    beaded = pathology.venous_beading(bent, small_cfg, amplitude=1.0)
    valid = np.asarray(graph.valid)
    assert np.all(np.asarray(fits_windows(beaded, small_cfg, diseased=True))[valid])
    n_tree = segment_groups(small_cfg)[-3].stop
    vein = (np.asarray(graph.kind) == VEIN) & (np.arange(graph.capacity) < n_tree)
    ratio = np.asarray(beaded.radius_um)[vein] / np.asarray(graph.radius_um)[vein]
    assert ratio.max() > 1.2 and ratio.min() < 0.9


# --- staging ------------------------------------------------------------------------------------

def test_stage_sampler_follows_the_mixture_and_the_clinical_logic(mixed_500):
    stage, present, types = mixed_500["stage"], mixed_500["findings"]["present"], mixed_500["findings"]["type"]
    freq = np.bincount(stage, minlength=5) / len(stage)
    np.testing.assert_allclose(freq, MIXED.mixture, atol=0.07 * np.sqrt(500 / len(stage)))  # 3 binomial sds of 0.4
    np.testing.assert_array_equal(mixed_500["label_dr"], stage > 0)
    count = {name: np.sum(present & (types == i), -1) for i, name in enumerate(pathology.LESION_NAMES)}
    mild, moderate, severe, pdr = (stage == s for s in range(1, 5))
    assert np.all(count["nonperfusion"][mild] == 0) and np.all(count["microaneurysm"][mild] >= 1)
    assert np.all(count["neovascularization"][~pdr] == 0) and np.mean(count["neovascularization"][pdr] > 0) > 0.9
    assert np.all(count["irma"][mild | moderate] == 0) and np.all(count["irma"][severe] >= 1)
    assert count["microaneurysm"][moderate].mean() > count["microaneurysm"][mild].mean()
    assert count["nonperfusion"][severe].mean() > count["nonperfusion"][moderate].mean() >= 1


def test_instance_map_points_at_the_findings(mixed_500):
    """Each microaneurysm's pixels carry its findings slot; each finding's bbox holds its centre."""
    inst, f = mixed_500["instance"], mixed_500["findings"]
    for i in range(0, len(inst), len(inst) // 10):
        for slot in np.flatnonzero(f["present"][i]):
            x0, y0, x1, y1 = f["bbox_px"][i, slot]
            cx, cy = f["center_px"][i, slot]
            assert x0 <= cx <= x1 and y0 <= cy <= y1
            if SLOT_OFFSETS["microaneurysm"] <= slot < SLOT_OFFSETS["microaneurysm"] + MAX_MICROANEURYSMS:
                area_px = (inst[i] == slot + 1).sum()
                np.testing.assert_allclose(area_px * (CFG_3MM.field.pixel_um / 1000) ** 2, f["area_mm2"][i, slot], rtol=1e-5)


def test_normal_stage_is_the_healthy_pipeline_and_a_healthy_draw_matches_it(small_batch, small_cfg, small_params):
    key = jax.random.key(3)
    # stage="normal" traces exactly the healthy program (no disease code at all).
    plain = jax.make_jaxpr(lambda k: simulate(k, small_params, small_cfg))(key)
    assert str(jax.make_jaxpr(lambda k: simulate(k, small_params, small_cfg, "normal"))(key)) == str(plain)
    # The exporters' programs: the healthy one, and the disease one drawing stage 0 for every sample.
    normal = jax.device_get(small_batch("normal", small_params, seed=3))
    assert not any(bool(m.any()) for m in normal.lesions.masks.values())
    drawn_healthy = jax.device_get(small_batch(ONLY_HEALTHY, small_params, seed=3))
    assert np.all(drawn_healthy.lesions.stage == 0)
    np.testing.assert_allclose(drawn_healthy.image, normal.image, atol=1e-5)
    np.testing.assert_array_equal(drawn_healthy.masks["vessel"], normal.masks["vessel"])


def test_pdr_sample_is_diseased_everywhere_it_should_be(small_batch, small_cfg, small_params):
    healthy = first(small_batch("normal", small_params, seed=4))
    pdr = first(small_batch("pdr", small_params, seed=4))
    assert int(pdr.lesions.stage) == 4 and bool(pdr.lesions.label_dr)
    assert float(pdr.lesions.measures["tortuosity_index"]) > float(healthy.lesions.measures["tortuosity_index"])
    assert float(pdr.stats["faz_area_mm2"]) > float(healthy.stats["faz_area_mm2"])
    # The FAZ's ragged border: its mask takes in a fringe of pruned capillaries outside the smooth border,
    # whose outline is longer for its area than that of the same FAZ without the fringe.
    from skimage.measure import perimeter

    faz_mask = np.asarray(pdr.masks["faz"])
    smooth = np.asarray(pdr.anatomy.faz.signed_depth_mm(pixel_centers_mm(small_cfg)) > 0) & ~np.asarray(pdr.masks["vessel"])
    acircularity = lambda m: perimeter(m) ** 2 / (4 * np.pi * m.sum())  # noqa: E731
    print(f"FAZ: {(faz_mask & ~smooth).sum()} fringe px; acircularity {acircularity(smooth):.3f} -> {acircularity(faz_mask):.3f}")
    assert (faz_mask & ~smooth).sum() >= 5 and np.all(faz_mask[smooth])
    assert acircularity(faz_mask) > acircularity(smooth)
    assert bool(pdr.lesions.masks["nonperfusion"].any())
    # NV vessels are vessels: in the vessel mask.
    assert bool(np.all(pdr.masks["vessel"][pdr.lesions.masks["neovascularization"]]))


def test_host_float64_measures_match_the_device(small_batch, small_params, small_cfg):
    """The export writes host (float64) recomputations of the device's float32 reductions: same values."""
    from svr_jax.export.pipeline import host_statistics
    from svr_jax.simulated import host_graph

    pdr = first(small_batch("pdr", small_params, seed=4))
    host = float(pathology.tortuosity_index(host_graph(pdr.anatomy.graph), small_cfg, xp=np))
    assert host > 1.0
    np.testing.assert_allclose(host, float(pdr.lesions.measures["tortuosity_index"]), rtol=1e-5)
    stats = host_statistics(pdr, small_cfg)
    assert set(stats) == set(pdr.stats)
    for name, value in stats.items():
        np.testing.assert_allclose(value, float(pdr.stats[name]), rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_one_hot_stage_weight_is_that_stage_for_every_key():
    # The exporters pass a fixed stage as one-hot weights (one program for every setting): the draw
    # must give that stage for every key, as the static setting does.
    keys = jax.random.split(jax.random.key(0), 20000)
    draw = jax.jit(jax.vmap(pathology.draw_weighted_stage, in_axes=(0, None)))
    for i, name in enumerate(pathology.STAGES):
        weights = pathology.stage_weights(pathology.PathologyConfig(name))
        assert np.all(np.asarray(draw(keys, weights)) == i)
    mixed = np.asarray(draw(keys, pathology.stage_weights(MIXED)))
    np.testing.assert_allclose(np.bincount(mixed, minlength=5) / len(keys), MIXED.mixture, atol=0.015)


def test_stage_config_errors_name_the_value():
    with pytest.raises(ValueError, match="unknown stage 'proliferative'"):
        pathology.PathologyConfig("proliferative")
    with pytest.raises(ValueError, match="5 non-negative weights"):
        pathology.PathologyConfig("mixed", mixture=(1.0, 2.0))


def test_generate_stage_metadata_names_each_lesion_type(tmp_path):
    out = tmp_path / "pdr"
    assert cli.main(["generate", "n=2", f"out={out}", "stage=mixed", "stage.mixture.normal=0", "stage.mixture.mild=0",
                     "stage.mixture.moderate=0", "stage.mixture.severe=0", "size_px=64", "fov_mm=1.0", "batch=4"]) == 0
    meta = json.loads((out / "meta" / "000001.json").read_text())
    assert meta["stage"] == "pdr" and meta["label_dr"] is True
    assert set(meta["lesion_counts"]) == set(pathology.LESION_NAMES)
    for finding in meta["findings"]:
        assert finding["type"] in pathology.LESION_NAMES and finding["area_mm2"] > 0 and len(finding["bbox_px"]) == 4
    assert set(meta["lesion_types"]) == {f["type"] for f in meta["findings"]}
    for key in ("tortuosity_index", "faz_circularity", "faz_area_mm2"):
        assert key in meta["measured"]
    assert (out / "masks" / "000001_microaneurysm.png").exists() and (out / "masks" / "000001_lesion_instance.png").exists()
    assert (out / "contact_sheet.png").exists()
    assert json.loads((out / "generate.json").read_text())["stage"] == "mixed"
