"""Space-colonisation trees (svr_jax.colonisation): anatomy invariants, laterality, purity, gradients."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import svr_jax as svr
from svr_jax import colonisation
from svr_jax.faz import sample_faz
from svr_jax.graph import ARTERY, VEIN


# The anatomical guidance switched on (the library defaults leave the arcuate field and the raphe pull off),
# scaled to the small test field: what the oracle and the gradient tests must cover too.
ANATOMY = dict(arcade_guidance=0.8, arcade_onset_mm=0.35, arcade_band_mm=0.5, raphe_sink_mm=1.5, raphe_pull=0.5,
               demand_ecc_exponent=0.5)


def _faz(key, fov_mm, offset_sd_mm=0.08):
    return sample_faz(key, center_mm=jnp.full(2, 0.5 * fov_mm), area_mm2=0.25, area_sd_mm2=0.05, irregularity=0.1,
                      offset_sd_mm=offset_sd_mm)


@functools.lru_cache(maxsize=None)
def _trees_program(cfg, reference: bool):
    def one(key, sign, vessels):
        k_faz, k_grow = jax.random.split(key)
        faz = _faz(k_faz, cfg.field.fov_mm)
        return colonisation.grow_colonised(k_grow, vessels, cfg, faz, sign, reference=reference), faz

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def _trees(cfg, params, keys, nasal_sign, reference: bool = False):
    """(graphs, FAZs) of colonisation trees per key; one compiled program per config (and path) for any
    parameters and the same number of keys."""
    return _trees_program(cfg, reference)(keys, nasal_sign, params.vessels)


def _proper_crossings(start, end, kind, valid, same_kind: bool = True) -> int:
    """Pairs of valid same-kind (or, ``same_kind=False``, artery-vein) segments that cross at an interior
    point (touching ends do not count)."""
    idx = np.flatnonzero(valid)
    s, e, k = start[idx], end[idx], kind[idx]
    hit = np.asarray(colonisation.segments_cross(s[:, None], e[:, None], s[None], e[None], eps=1e-12))
    return int(np.sum(np.triu(hit & ((k[:, None] == k[None]) == same_kind), 1)))


@pytest.mark.parametrize("preset", ["3mm", "6mm"])
def test_no_two_same_kind_segments_cross(preset):
    """Over 24 eyes per field: not one proper crossing between two arterioles or two venules (tolerance:
    none; segments meeting at a junction touch at an end, which is not a crossing). Arteries and veins
    may cross (rarely)."""
    cfg = svr.preset(preset)
    params = svr.default_params(cfg)
    keys = jax.random.split(jax.random.key(11), 24)
    graph, _ = _trees(cfg, params, keys, jnp.where(jnp.arange(24) % 2 == 0, 1.0, -1.0))
    g = jax.tree.map(np.asarray, graph)
    assert g.valid.sum(1).min() > 200
    crossings = [_proper_crossings(g.start_mm[i], g.end_mm[i], g.kind[i], g.valid[i]) for i in range(24)]
    assert sum(crossings) == 0, crossings


EIGHT_SIGNS = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)  # right, left, right, ...


def _eight_eyes(cfg, params, **vessels):
    """(graph, FAZ) of eight eyes (keys of seed 12, right and left alternating) with ``vessels`` values, as numpy."""
    vp = dataclasses.replace(params.vessels, **vessels)
    out = _trees(cfg, dataclasses.replace(params, vessels=vp), jax.random.split(jax.random.key(12), 8), jnp.asarray(EIGHT_SIGNS))
    return jax.tree.map(np.asarray, out)


def test_kind_owned_demand_makes_arteries_and_veins_cross_but_never_the_same_kind(small_cfg, small_params):
    """Attractors that serve one kind only let the artery and vein trees overlap: A-V crossings become
    common (with every attractor shared they are rare), while same-kind crossings stay refused."""
    counts = {}
    for own in (0.0, 1.0):
        g, _ = _eight_eyes(small_cfg, small_params, kind_owned_demand=own)
        assert sum(_proper_crossings(g.start_mm[i], g.end_mm[i], g.kind[i], g.valid[i]) for i in range(8)) == 0
        counts[own] = sum(_proper_crossings(g.start_mm[i], g.end_mm[i], g.kind[i], g.valid[i], False) for i in range(8))
    assert counts[1.0] >= 3 * max(1, counts[0.0]), counts


def test_the_raphe_pull_turns_the_temporal_vessels_towards_the_raphe_in_both_eyes(small_cfg, small_params):
    """Temporal of the fovea, the segments run more nearly at right angles to the horizontal raphe with the
    pull than without (superior and inferior trees' branches meet there), in right and left eyes alike."""
    vertical = {}
    for pull in (0.0, 2.0):
        g, faz = _eight_eyes(small_cfg, small_params, raphe_pull=pull)
        d = g.end_mm - g.start_mm
        mid = 0.5 * (g.end_mm + g.start_mm) - faz.center_mm[:, None]
        temporal = g.valid & (mid[..., 0] * EIGHT_SIGNS[:, None] < -0.2)
        vertical[pull] = [float(np.mean(np.abs(d[i, temporal[i], 1]) / np.linalg.norm(d[i, temporal[i]], axis=-1)))
                          for i in range(8)]
    gain = np.array(vertical[2.0]) - np.array(vertical[0.0])
    assert gain[::2].mean() > 0.1 and gain[1::2].mean() > 0.1, vertical


def test_the_faz_stays_vessel_free(small_cfg, small_params):
    keys = jax.random.split(jax.random.key(3), 8)
    graph, faz = _trees(small_cfg, small_params, keys, jnp.ones(8))
    for t in (0.0, 0.5, 1.0):
        points = (1 - t) * graph.start_mm + t * graph.end_mm
        depth = jax.vmap(lambda f, p: f.signed_depth_mm(p))(faz, points)
        assert float(jnp.max(jnp.where(graph.valid, depth, -1.0))) < 0.0


def test_left_and_right_eyes_are_mirror_images():
    cfg = svr.preset("3mm")
    params = svr.default_params(cfg)
    faz = _faz(jax.random.key(1), cfg.field.fov_mm)
    mirrored = colonisation.mirror_faz(faz, cfg.field.fov_mm)
    grow = jax.jit(lambda f, s: colonisation.grow_colonised(jax.random.key(2), params.vessels, cfg, f, s))
    right, left = grow(faz, 1.0), grow(mirrored, -1.0)
    flip = np.array([-1.0, 1.0]), np.array([cfg.field.fov_mm, 0.0])
    np.testing.assert_array_equal(np.asarray(right.valid), np.asarray(left.valid))
    np.testing.assert_array_equal(np.asarray(right.kind), np.asarray(left.kind))
    valid = np.asarray(right.valid)
    np.testing.assert_allclose(np.asarray(left.end_mm)[valid], (np.asarray(right.end_mm) * flip[0] + flip[1])[valid], atol=1e-5)
    # The optic disc side: the trees' entry points lie on the nasal half more in OD than in OS.
    x_roots = np.asarray(right.start_mm)[: cfg.growth.n_roots, 0]
    np.testing.assert_allclose(np.asarray(left.start_mm)[: cfg.growth.n_roots, 0], cfg.field.fov_mm - x_roots, atol=1e-5)


def test_mirror_faz_reflects_the_border():
    faz = _faz(jax.random.key(4), 3.0)
    mirrored = colonisation.mirror_faz(faz, 3.0)
    theta = jnp.linspace(0, 2 * jnp.pi, 37)
    np.testing.assert_allclose(np.asarray(mirrored.border_radius_mm(jnp.pi - theta)), np.asarray(faz.border_radius_mm(theta)), atol=1e-6)


def test_deterministic_vmap_equals_loop_and_jit_equals_eager(tiny_cfg):
    params = svr.default_params(tiny_cfg)
    keys = jax.random.split(jax.random.key(7), 3)
    faz = _faz(jax.random.key(8), tiny_cfg.field.fov_mm, 0.0)
    grow = lambda k, s: colonisation.grow_colonised(k, params.vessels, tiny_cfg, faz, s)  # noqa: E731
    signs = jnp.array([1.0, -1.0, 1.0])
    batched = jax.jit(jax.vmap(grow))(keys, signs)
    again = jax.jit(jax.vmap(grow))(keys, signs)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for i in range(3):
        one_jit = jax.jit(grow)(keys[i], signs[i])
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one_jit)):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), atol=1e-5)
        if i == 0:  # eager runs every operation of the growth loop on its own (~15 s a sample): one sample
            with jax.disable_jit():
                one_eager = grow(keys[i], signs[i])
            for b, c in zip(jax.tree.leaves(one_jit), jax.tree.leaves(one_eager)):
                np.testing.assert_allclose(np.asarray(b), np.asarray(c), atol=1e-5)


def test_gradients_are_finite_and_reach_the_continuous_parameters(small_cfg, small_params):
    faz = _faz(jax.random.key(8), small_cfg.field.fov_mm)

    def loss(vp):
        g = colonisation.grow_colonised(jax.random.key(5), vp, small_cfg, faz, 1.0)
        w = g.valid.astype(jnp.float32)
        return jnp.sum(w * g.radius_um * g.length_mm()) + jnp.sum(w[:, None] * g.end_mm * jnp.array([0.3, 0.7]))

    vp = dataclasses.replace(small_params.vessels, kind_owned_demand=0.5, tree_radius_sd=0.2, leaf_radius_sd=0.2, **ANATOMY)
    grad = jax.jit(jax.grad(loss))(vp)
    names = ("growth_step_mm", "leaf_radius_um", "murray_exponent", "foveal_pull", "growth_inertia", "tortuosity_rad",
             "tree_radius_sd", "leaf_radius_sd", *ANATOMY)
    for name in names:
        value = float(getattr(grad, name))
        assert np.isfinite(value), name
    for name in ("growth_step_mm", "leaf_radius_um", "murray_exponent", "growth_inertia", "tree_radius_sd", "leaf_radius_sd",
                 *ANATOMY):
        assert abs(float(getattr(grad, name))) > 0, name
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(grad))


def test_murray_law_holds_at_every_junction(small_cfg, small_params):
    """Also with the per-tree and per-leaf radius spreads: r^k is conserved whatever the leaves' radii."""
    faz = _faz(jax.random.key(9), small_cfg.field.fov_mm)
    vp = dataclasses.replace(small_params.vessels, tree_radius_sd=0.2, leaf_radius_sd=0.3)
    g = jax.tree.map(np.asarray, jax.jit(lambda: colonisation.grow_colonised(jax.random.key(6), vp, small_cfg, faz, 1.0))())
    k = float(np.clip(vp.murray_exponent, 2.0, 3.5))
    leaf = g.valid & ~np.isin(np.arange(len(g.valid)), g.parent[g.valid])
    assert np.std(np.log(g.radius_um[leaf])) > 0.1  # the leaves' radii do differ
    child = g.valid & (g.parent >= 0)
    flow = np.zeros(len(g.valid))
    np.add.at(flow, g.parent[child], g.radius_um[child] ** k)
    inner = np.flatnonzero(flow > 0)
    capped = g.radius_um[inner] >= small_cfg.growth.max_root_radius_um - 1e-3
    np.testing.assert_allclose(g.radius_um[inner][~capped] ** k, flow[inner][~capped], rtol=1e-3)


def test_roots_alternate_artery_and_vein():
    cfg = svr.preset("3mm")
    faz = _faz(jax.random.key(1), 3.0)
    _, _, kind, _ = colonisation.root_layout(jax.random.key(3), svr.default_params(cfg).vessels, cfg, faz, 1.0)
    kind = np.asarray(kind)
    assert set(kind) == {ARTERY, VEIN} and np.all(kind[1:] != kind[:-1])


def test_path_tortuosity_index_host_float64_matches_device(colonisation_cfg, small_params):
    """The export recomputes the tortuosity index on the host (float64, numpy); on the colonisation trees
    it follows ``parent`` and ``radius_um`` as the device does."""
    from svr_jax import pathology
    from svr_jax.simulated import host_graph

    graph = jax.jit(lambda k: svr.grow(k, small_params, colonisation_cfg).graph)(jax.random.key(2))
    device = float(jax.jit(lambda g: pathology.tortuosity_index(g, colonisation_cfg))(graph))
    host = float(pathology.tortuosity_index(host_graph(jax.device_get(graph)), colonisation_cfg, xp=np))
    index, whole = pathology.branch_tortuosity(graph, colonisation_cfg)
    assert int(jnp.sum(whole)) > 20 and 1.0 <= device < 1.05
    np.testing.assert_allclose(host, device, rtol=1e-5)


def test_nearest_new_equals_the_reference():
    """The fast nearest-node update gives the plain formula's index and distance (to float rounding), ties
    (duplicate nodes: the first wins) and points with no allowed node (index 0, distance inf) included."""
    k_p, k_n, k_a = jax.random.split(jax.random.key(12), 3)
    points = jax.random.uniform(k_p, (300, 2), maxval=3.0)
    nodes = jax.random.uniform(k_n, (9, 2), maxval=3.0).at[5].set(points[0]).at[7].set(points[0])
    allowed = jax.random.bernoulli(k_a, 0.6, (300, 9)).at[:20].set(False).at[0].set(True)
    fast = jax.jit(colonisation.nearest_new)(points, nodes, allowed)
    ref = jax.jit(colonisation.nearest_new_reference)(points, nodes, allowed)
    np.testing.assert_array_equal(np.asarray(fast[0]), np.asarray(ref[0]))
    np.testing.assert_allclose(np.asarray(fast[1]), np.asarray(ref[1]), rtol=1e-6)
    assert int(fast[0][0]) == 5 and not np.isfinite(np.asarray(fast[1][1:20])).any()


def test_fast_growth_equals_the_reference(small_cfg, small_params):
    """Every fast path of the growth (``reference=False``) grows the same trees as the plain formulas, on a
    few seeds and both eyes, with the anatomical guidance on: same topology, positions and radii to float
    tolerance."""
    keys = jax.random.split(jax.random.key(13), 8)
    signs = jnp.where(jnp.arange(8) % 2 == 0, 1.0, -1.0)
    params = dataclasses.replace(small_params, vessels=dataclasses.replace(small_params.vessels, **ANATOMY))

    def grow(reference):
        return jax.tree.map(np.asarray, _trees(small_cfg, params, keys, signs, reference)[0])

    fast, ref = grow(False), grow(True)
    assert ref.valid.sum() > 100
    for name in ("valid", "kind", "parent"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
    for name in ("start_mm", "end_mm", "radius_um"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("roots,new,steps,phases", [(8, 24, 48, 4), (10, 32, 64, 4), (3, 6, 10, 4), (4, 12, 24, 7), (2, 5, 3, 4)])
def test_scan_phases_cover_every_step_and_its_filled_slots(roots, new, steps, phases):
    """The phases run every step once, in order, and each phase's slot bound holds every slot that can be
    filled before any of its steps (at most ``new`` per step), within capacity and no less than ``new``
    (the growers' top-k)."""
    spans = colonisation.scan_phases(roots, new, steps, phases)
    assert [t for a, b, _ in spans for t in range(a, b)] == list(range(steps))
    for a, b, bound in spans:
        assert new <= bound <= roots + steps * new
        assert all(roots + t * new <= bound for t in range(a, b))


def test_the_arcuate_field_runs_on_circles_from_the_disc_to_the_raphe_sink_and_mirrors():
    """Its streamlines are the circular arcs through the optic disc and the raphe sink: at every point the
    direction is tangent to the circle through disc, sink and that point; on the disc-fovea line it runs
    along the line (no streamline crosses it); a left eye's field is the right eye's mirrored."""
    fovea, sink = jnp.array([1.5, 1.5]), 2.5
    pts = jax.random.uniform(jax.random.key(0), (64, 2), minval=-1.5, maxval=4.5)
    u = np.asarray(colonisation.arcade_direction(pts, fovea, 1.0, sink))
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, atol=1e-5)
    disc = np.asarray(fovea) + [colonisation.DISC_DISTANCE_MM, 0.0]
    t = np.asarray(fovea) - [sink, 0.0]
    p = np.asarray(pts)
    # Centre of the circle through disc, sink and p: on the perpendicular bisector x = mid of disc and sink.
    cx = 0.5 * (disc[0] + t[0])
    cy = ((p[:, 0] - cx) ** 2 + p[:, 1] ** 2 - (disc[0] - cx) ** 2 - disc[1] ** 2) / (2 * (p[:, 1] - disc[1]))
    radius = p - np.stack([np.full(len(p), cx), cy], -1)
    np.testing.assert_allclose(np.sum(u * radius, -1) / np.linalg.norm(radius, axis=-1), 0.0, atol=2e-3)
    on_axis = jnp.stack([jnp.linspace(-1.0, 4.0, 9), jnp.full(9, 1.5)], -1)
    np.testing.assert_allclose(np.asarray(colonisation.arcade_direction(on_axis, fovea, 1.0, sink))[:, 1], 0.0, atol=1e-6)
    flip = np.array([-1.0, 1.0])
    mirrored = colonisation.arcade_direction(pts * flip + jnp.array([3.0, 0.0]), fovea * flip + jnp.array([3.0, 0.0]), -1.0, sink)
    np.testing.assert_allclose(np.asarray(mirrored), u * flip, atol=1e-5)


def test_the_raphe_pull_points_straight_at_the_raphe_temporally_only():
    fovea = jnp.array([3.0, 3.0])
    pts = jnp.array([[1.0, 2.0], [1.0, 4.5], [5.0, 2.0], [5.0, 4.5]])  # temporal above/below, nasal above/below (OD)
    od = np.asarray(colonisation.raphe_direction(pts, fovea, 1.0))
    np.testing.assert_allclose(od, [[0.0, 1.0], [0.0, -1.0], [0.0, 0.0], [0.0, 0.0]], atol=2e-3)
    os_ = np.asarray(colonisation.raphe_direction(pts * jnp.array([-1.0, 1.0]) + jnp.array([6.0, 0.0]), fovea, -1.0))
    np.testing.assert_allclose(os_, od, atol=1e-6)


@pytest.mark.parametrize("exponent", [-1.0, 0.0, 1.5])
def test_demand_warp_gives_the_density_law_and_keeps_the_points_in_the_field(exponent):
    """Along every ray from the fovea the fraction of points within s of it (s: fraction of the way to the
    field edge) is s^(2 + exponent); exponent 0 leaves the points where they are."""
    fov = 3.0
    fovea = jnp.array([1.4, 1.6])
    pts = jax.random.uniform(jax.random.key(1), (20000, 2), maxval=fov)
    warped = np.asarray(colonisation.demand_warp(pts, fovea, fov, exponent))
    assert warped.min() >= -1e-5 and warped.max() <= fov + 1e-5
    if exponent == 0.0:
        np.testing.assert_allclose(warped, np.asarray(pts), atol=1e-5)
    d = warped - np.asarray(fovea)
    edge = np.asarray(colonisation._exit_point(fovea, jnp.asarray(d / np.linalg.norm(d, axis=-1, keepdims=True)), fov, 0.0)) - np.asarray(fovea)
    s = np.linalg.norm(d, axis=-1) / np.linalg.norm(edge, axis=-1)
    for q in (0.3, 0.6):
        assert abs(np.mean(s < q) - q ** (2.0 + exponent)) < 0.015
