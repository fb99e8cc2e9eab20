"""Arteriole and venule trees by space colonisation (Runions et al. 2005), in fixed-capacity arrays.

The tissue's demand for perfusion is a cloud of ``attractors`` (density ~ eccentricity ** ``demand_ecc_exponent``,
uniform at 0; none within ``demand_clearance_mm`` of the FAZ border: the FAZ has no demand). Trees start from ``n_roots`` entry points
on the field's edge (and, with ``disc_roots``, on its optic-disc side), alternating artery and vein
along it. Every growth step is one pass of the classic algorithm:

1. each live attractor belongs to its nearest node of the kinds it serves. A fraction
   ``kind_owned_demand`` of the attractors serves one kind only (half arterial, half venous: the tissue
   needs both a supply and a drain, so an artery and a vein both reach it, and their trees overlap and
   cross); the rest serve the nearest node of either kind (arteries and veins compete for it, so their
   territories interdigitate instead of overlapping). 0: every attractor shared, A-V crossings rare;
   1: two independent demand fields, A-V crossings everywhere;
2. every node that owns attractors within ``influence_mm`` may grow one new node, ``growth_step_mm``
   along the mean direction to them, turned by the anatomy (``guidance``): an arcuate field in a band
   round the fovea (``arcade_direction``: circular arcs from the optic disc to a sink on the temporal
   raphe, the arcades' sweep round the fovea), a pull to the fovea and, temporally, one straight to
   the raphe (where superior and inferior branches meet); and by a random heading noise (``tortuosity_rad``);
3. a new node is refused where its segment would cross an existing segment of its own kind, enter the
   FAZ, or cross the horizontal raphe temporally (superior and inferior trees meet there, not across);
4. attractors within ``kill_mm`` of a node are satisfied and removed.

Why it maps onto fixed arrays: each step adds at most ``new_per_step`` nodes (the nodes with the most
attractors first) into the next free slots, so node capacity is ``n_roots + steps * new_per_step``; the
nearest-node table of the attractors is updated incrementally against the new nodes only, so a step
costs O(attractors · new_per_step), not O(attractors · nodes). One ``lax.scan`` over steps, no loop over
samples, nodes or segments.

The grown paths are then relaxed (``smooth_paths``) and side twigs shorter than ``min_twig_steps`` cut.

Calibre by Murray's law from the leaves up: a terminal branch has radius ``leaf_radius_um`` times a
log-normal factor per tree (log sd ``tree_radius_sd``: one eye's vessels are not all alike) and one per
leaf (``leaf_radius_sd``), and a vessel has r = (sum of r_leaf^k over the leaves it feeds)^(1/k) (r^k is
conserved at every junction), k = ``murray_exponent``. Each node is one segment (from its parent to it;
a root's from outside the field).

What the gradient sees: the topology (which attractor is nearest, which node grows, which is refused,
how many leaves a vessel feeds, which attractor serves which kind) is discrete and held fixed; node
positions are differentiable in the step length, the guidance (``arcade_guidance``, ``arcade_onset_mm``,
``arcade_band_mm``, ``raphe_sink_mm``, ``foveal_pull``, ``raphe_pull``), the attractors' density law
(``demand_ecc_exponent`` moves them) and the root layout; radii in
``leaf_radius_um``, ``murray_exponent`` and the two radius spreads.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from .config import SimConfig, VesselParams
from .faz import Faz
from .graph import ARTERY, VEIN, SegmentGroup, VesselGraph

MAX_ROOT_VERTICAL_BIAS = 0.9
RAPHE_HALF_ANGLE_RAD = math.radians(35.0)  # edge roots keep out of this sector round the temporal raphe
NOISE_CLIP = 2.5
SMOOTHING_PASSES = 20
# Relaxing the paths can stretch a segment beside a junction (up to ~1.8 steps): the render window allows 2.
SPAN_ALLOWANCE = 2.0
# The attractor field already makes a path wander: the heading noise is this fraction of the fixed
# layout's (same tortuosity_rad), so that healthy trees keep an arc/chord index near 1.01.
HEADING_NOISE_SCALE = 0.5
# The growth scan runs in this many phases, each looking only at the slots that can hold a node by its end.
SCAN_PHASES = 4
# The optic disc's centre, nasal of the fovea (anatomy: 4-4.5 mm; outside both fields): the arcuate
# field's source.
DISC_DISTANCE_MM = 4.0
MIN_SINK_MM = 0.5  # the arcuate field's sink stays off the fovea
ARCADE_ONSET_WIDTH_MM = 0.25  # the arcuate field's weight rises over this distance round arcade_onset_mm
MIN_DEMAND_EXPONENT, MAX_DEMAND_EXPONENT = -1.5, 4.0
RAPHE_FADE_MM = 0.15  # the pull to the raphe fades in over this distance temporal of the fovea
RAPHE_SOFT_MM = 0.05  # and weakens within this distance of the raphe (no flip-flop on it)


def capacity(cfg: SimConfig) -> int:
    g = cfg.growth
    return g.n_roots + g.colonisation_steps * g.new_per_step


def scan_phases(n_roots: int, new_per_step: int, steps: int, phases: int) -> list[tuple[int, int, int]]:
    """(first step, stop step, slot bound) of each phase of the growth scan. Before step s at most
    ``n_roots + s * new_per_step`` slots are filled (each step fills at most ``new_per_step`` next free
    slots), so the steps of a phase need only the slots below its bound: the per-step work that scales
    with the node count (the same-kind crossing test, the growers' ranking) runs on the filled part of
    the arrays, about (phases + 1) / (2 phases) of the full capacity on average, with the same result."""
    m = n_roots + steps * new_per_step
    edges = [round(i * steps / phases) for i in range(phases + 1)]
    return [(a, b, max(new_per_step, min(m, n_roots + (b - 1) * new_per_step))) for a, b in zip(edges, edges[1:]) if b > a]


def _edge_angles(key, n: int, bias, temporal_only: bool):
    """Angles (from the fovea, 0 = nasal) of the edge roots: evenly spread with jitter on both sides of the
    temporal raphe's sector (which they keep out of), crowded towards the top and bottom by ``bias``.
    ``temporal_only`` (when disc roots serve the nasal side): the temporal half only."""
    k_phase, k_jit = jax.random.split(key)
    lo, hi = RAPHE_HALF_ANGLE_RAD, (0.4 if temporal_only else 1.0) * math.pi
    span = 2 * (hi - lo)
    phase = jax.random.uniform(k_phase, maxval=span)
    u = (phase + (jnp.arange(n) + 0.6 * jax.random.uniform(k_jit, (n,))) * span / max(n, 1)) % span
    a = jnp.where(u < hi - lo, lo + u, -(lo + u - (hi - lo)))  # from the raphe, either way round
    angle = jnp.pi + a
    b = jnp.clip(bias, 0.0, MAX_ROOT_VERTICAL_BIAS)
    return jnp.where(b > 0, jnp.arctan2(jnp.sin(angle), (1.0 - b) * jnp.cos(angle)), angle)


def _exit_point(center, direction, fov_mm: float, margin_frac: float = 0.01):
    """Where the ray from ``center`` along ``direction`` leaves the field grown by ``margin_frac`` of it."""
    margin = margin_frac * fov_mm
    lo, hi = -margin, fov_mm + margin
    safe = jnp.where(jnp.abs(direction) < 1e-6, 1e-6, direction)
    t = jnp.min(jnp.where(safe > 0, (hi - center) / safe, (lo - center) / safe), axis=-1)
    return center + t[..., None] * direction


def root_layout(key, vp: VesselParams, cfg: SimConfig, faz: Faz, nasal_sign):
    """(position [R, 2], inward heading [R, 2], kind [R], hemisphere [R]: -1 superior, +1 inferior)."""
    g, fov = cfg.growth, cfg.field.fov_mm
    n_edge = g.n_roots - g.disc_roots
    k_edge, k_disc, k_kind = jax.random.split(key, 3)
    # Angles measured in a right eye (nasal = +x), mirrored by nasal_sign.
    angle = _edge_angles(k_edge, n_edge, vp.root_vertical_bias, g.disc_roots > 0)
    direction = jnp.stack([nasal_sign * jnp.cos(angle), jnp.sin(angle)], -1)
    pos_edge = _exit_point(faz.center_mm, direction, fov)
    # Disc roots: the superior and inferior arcade vessels, entering through the nasal edge above and below.
    side = jnp.where(jnp.arange(g.disc_roots) < (g.disc_roots + 1) // 2, -1.0, 1.0)
    offset = jax.random.uniform(k_disc, (g.disc_roots,), minval=0.1, maxval=0.45) * fov
    x_disc = jnp.where(nasal_sign > 0, fov * 1.01, -0.01 * fov)
    pos_disc = jnp.stack([jnp.full((g.disc_roots,), 1.0) * x_disc, jnp.clip(faz.center_mm[1] + side * offset, 0.0, fov)], -1)
    pos = jnp.concatenate([pos_disc, pos_edge], 0)
    inward = faz.center_mm - pos
    inward = inward / _norm(inward, keepdims=True)
    # A root enters along the course the guidance gives (a disc root along its arcade).
    heading = inward + guidance(pos, inward, vp, faz.center_mm, nasal_sign)
    heading = heading / _norm(heading, keepdims=True)
    # Kinds alternate along the edge (edge roots are in angle order; disc roots by side, then distance).
    order_disc = jnp.argsort(jnp.argsort(side * 10.0 + offset))
    rank = jnp.concatenate([order_disc, g.disc_roots + jnp.arange(n_edge)])
    first = jax.random.bernoulli(k_kind).astype(jnp.int32)
    kind = jnp.where((rank + first) % 2 == 0, ARTERY, VEIN).astype(jnp.int32)
    hemisphere = jnp.where(pos[:, 1] < faz.center_mm[1], -1.0, 1.0)
    return pos, heading, kind, hemisphere


SHARED = -1  # an attractor's kind when it serves the nearest node of either kind


def demand_warp(pts, fovea, fov_mm: float, exponent):
    """Move uniform points along their ray from the fovea so that their density becomes ~ s ** exponent,
    s = distance from the fovea over the ray's distance to the field edge (0 at the fovea, 1 on the edge).

    Uniform points have s with density 2 s on [0, 1] on every ray (CDF s^2); s' = s^(2 / (2 + exponent))
    maps that to density ~ s'^(1 + exponent), i.e. an area density ~ s'^exponent. Exponent 0 is the identity,
    points stay inside the field (s' <= 1), and positions are differentiable in the exponent."""
    d = pts - fovea
    rho = _norm(d, keepdims=True)
    edge = _norm(_exit_point(fovea, d / rho, fov_mm, 0.0) - fovea, keepdims=True)
    s = jnp.clip(rho / edge, 1e-6, 1.0)
    power = 2.0 / (2.0 + jnp.clip(exponent, MIN_DEMAND_EXPONENT, MAX_DEMAND_EXPONENT))
    return fovea + d * (s ** (power - 1.0))


def sample_attractors(key, vp: VesselParams, cfg: SimConfig, faz: Faz):
    """[K, 2] attractor positions, [K] bool: live (outside the FAZ and its clearance), and [K] the kind
    each serves (ARTERY, VEIN, or SHARED; see the module docstring). Their density by eccentricity
    follows ``demand_ecc_exponent`` (``demand_warp``)."""
    fov = cfg.field.fov_mm
    n = cfg.growth.attractors
    pts = jax.random.uniform(key, (n, 2), minval=0.0, maxval=fov)
    pts = demand_warp(pts, faz.center_mm, fov, vp.demand_ecc_exponent)
    owned = jax.random.uniform(jax.random.fold_in(key, 1), (n,)) < vp.kind_owned_demand
    kind = jnp.where(owned, jnp.where(jnp.arange(n) % 2 == 0, ARTERY, VEIN), SHARED).astype(jnp.int32)
    return pts, faz.signed_depth_mm(pts) < -vp.demand_clearance_mm, kind


def serves(attr_kind, node_kind):
    """Whether attractors of ``attr_kind`` may be served by nodes of ``node_kind`` (broadcasts)."""
    return (attr_kind == SHARED) | (attr_kind == node_kind)


def _norm(v, keepdims: bool = False):
    """Euclidean norm of 2-vectors with a finite gradient at 0 (``jnp.linalg.norm``'s is NaN there, and
    masked growers have zero pull vectors). Written per coordinate: XLA's CPU backend runs a sum over a
    size-2 axis as a slow reduction."""
    n = jnp.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + 1e-12)
    return n[..., None] if keepdims else n


def nearest_new(points, nodes, allowed):
    """([K] index, [K] distance) of each point's nearest allowed node (``allowed`` [K, J] bool) among
    ``nodes`` [J, 2]; (0, inf) where none is allowed, as ``argmin``/``min`` give.

    The fast path of ``nearest_new_reference``: squared distances per coordinate, the first index of
    their minimum as a second plain min, and one square root per point, because XLA's CPU backend runs a
    reduction over a size-2 axis and an argmin (a variadic reduce) each about ten times slower than
    plain elementwise work. Equal to the reference up to float rounding (the square root is monotone: the
    index can differ only where two nodes' distances agree to within a float32 rounding)."""
    # [J, K]: the reductions run over the leading (node) axis, elementwise across the points.
    dx = nodes[:, 0, None] - points[None, :, 0]
    dy = nodes[:, 1, None] - points[None, :, 1]
    d2 = jnp.where(allowed.T, dx * dx + dy * dy, jnp.inf)
    best_d2 = jnp.min(d2, axis=0)
    j = nodes.shape[0]
    best = jnp.min(jnp.where(d2 == best_d2[None], jnp.arange(j)[:, None], j), axis=0)
    return best, jnp.sqrt(best_d2 + 1e-12)


def nearest_new_reference(points, nodes, allowed):
    """The oracle of ``nearest_new``: the plain formula."""
    d = jnp.sqrt(jnp.sum(jnp.square(points[:, None] - nodes[None]), -1) + 1e-12)
    d = jnp.where(allowed, d, jnp.inf)
    return jnp.argmin(d, axis=1), jnp.min(d, axis=1)


def _cross(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def segments_cross(p1, p2, q1, q2, eps: float = 1e-12):
    """Whether segments p1-p2 and q1-q2 properly intersect (touching at an end does not count). Broadcasts.
    ``eps`` (mm^4, on the product of two cross products): 1e-12 still sees two steps that overlap nearly
    parallel a micrometre apart (products ~ 1e-10), which the trees grow where two paths chase the same
    attractors; float32 rounding of the positions stays below it."""
    d1, d2 = p2 - p1, q2 - q1
    o1 = _cross(d1, q1 - p1)
    o2 = _cross(d1, q2 - p1)
    o3 = _cross(d2, p1 - q1)
    o4 = _cross(d2, p2 - q1)
    return (o1 * o2 < -eps) & (o3 * o4 < -eps)


def arcade_direction(pos, fovea, nasal_sign, sink_mm):
    """Unit direction of the arcuate field at ``pos`` [..., 2]: the streamlines of a source at the optic disc
    (``DISC_DISTANCE_MM`` nasal of the fovea) and a sink on the temporal raphe (``sink_mm`` temporal of
    it). They are the circular arcs through disc and sink: they leave the disc, sweep above or below the
    fovea and meet on the raphe without crossing the disc-fovea line (Jansonius-type arcuate course at
    constant curvature). Nasal of the fovea they run along the line to it; above and below it, around it."""
    axis = jnp.stack([nasal_sign, jnp.zeros_like(nasal_sign)], -1)
    a = pos - (fovea + DISC_DISTANCE_MM * axis)
    b = pos - (fovea - jnp.maximum(sink_mm, MIN_SINK_MM) * axis)
    u = a / (jnp.sum(a * a, -1, keepdims=True) + 1e-6) - b / (jnp.sum(b * b, -1, keepdims=True) + 1e-6)
    return u / (_norm(u, keepdims=True) + 1e-9)


def guidance(pos, want, vp: VesselParams, fovea, nasal_sign):
    """[..., 2] the anatomical terms of a growth direction at ``pos`` (added to the unit ``want``, the
    demand's): the arcuate field (``arcade_guidance``, in the band from ``arcade_onset_mm`` to
    ``arcade_onset_mm + arcade_band_mm`` from the fovea; an orientation, turned to agree with ``want``),
    the pull to the fovea (``foveal_pull``) and, temporally, to the raphe (``raphe_pull``)."""
    d = fovea - pos
    rho = _norm(d, keepdims=True)
    band = (jax.nn.sigmoid((rho - vp.arcade_onset_mm) / ARCADE_ONSET_WIDTH_MM)
            * jax.nn.sigmoid((vp.arcade_onset_mm + vp.arcade_band_mm - rho) / ARCADE_ONSET_WIDTH_MM))
    arc = arcade_direction(pos, fovea, nasal_sign, vp.raphe_sink_mm)
    arc = jnp.where(jnp.sum(arc * want, -1, keepdims=True) < 0, -arc, arc)  # never against the demand
    return (vp.arcade_guidance * band * arc + vp.foveal_pull * d / (rho + 1e-9)
            + vp.raphe_pull * raphe_direction(pos, fovea, nasal_sign))


def raphe_direction(pos, fovea, nasal_sign):
    """Temporal of the fovea, the unit vector from ``pos`` [..., 2] straight to the horizontal raphe (up or
    down), faded in over ``RAPHE_FADE_MM`` past the fovea; zero nasally. The superior and inferior trees'
    temporal branches run towards the raphe, where they meet, as the nasal ones run towards the fovea."""
    d = pos - fovea
    temporal = jax.nn.sigmoid(-d[..., 0] * nasal_sign / RAPHE_FADE_MM)
    dy = -d[..., 1] / jnp.sqrt(d[..., 1] * d[..., 1] + RAPHE_SOFT_MM**2)  # ~ -sign(dy), smooth on the raphe
    return jnp.stack([jnp.zeros_like(dy), temporal * dy], -1)


def mirror_faz(faz: Faz, fov_mm: float) -> Faz:
    """The FAZ reflected left-right across the field's vertical midline: r(θ) -> r(π - θ)."""
    k = jnp.arange(2, 6, dtype=jnp.float32)
    return Faz(center_mm=faz.center_mm * jnp.array([-1.0, 1.0]) + jnp.array([fov_mm, 0.0]), radius_mm=faz.radius_mm,
               amplitude=faz.amplitude, phase=-faz.phase - k * jnp.pi)


def grow_colonised(key: jax.Array, vp: VesselParams, cfg: SimConfig, faz: Faz, nasal_sign, *, reference: bool = False) -> VesselGraph:
    """The trees as a graph of ``capacity(cfg)`` segments, one per node (see the module docstring).

    Grown in a right eye's frame (optic disc to the right); a left eye (``nasal_sign`` < 0) is grown
    around the mirrored FAZ and mirrored back, so the two eyes' trees are exact mirror images.
    ``reference``: the plain (slow) formulas of every fast path, the tests' oracle."""
    fov = cfg.field.fov_mm
    left = nasal_sign < 0
    canonical = jax.tree.map(lambda a, b: jnp.where(left, b, a), faz, mirror_faz(faz, fov))
    graph = _grow_right_eye(key, vp, cfg, canonical, reference)
    flip = lambda p: jnp.where(left, p * jnp.array([-1.0, 1.0]) + jnp.array([fov, 0.0]), p)  # noqa: E731
    return dataclasses.replace(graph, start_mm=flip(graph.start_mm), end_mm=flip(graph.end_mm))


def _grow_right_eye(key: jax.Array, vp: VesselParams, cfg: SimConfig, faz: Faz, reference: bool) -> VesselGraph:
    g = cfg.growth
    nearest_fn = nearest_new_reference if reference else nearest_new
    nasal_sign = 1.0
    n_roots, n_new, n_steps = g.n_roots, g.new_per_step, g.colonisation_steps
    m = capacity(cfg)
    k_roots, k_attr, k_noise, k_rank = jax.random.split(key, 4)
    root_pos, root_heading, root_kind, root_hemi = root_layout(k_roots, vp, cfg, faz, nasal_sign)
    attr, attr_live, attr_kind = sample_attractors(k_attr, vp, cfg, faz)
    step = jnp.clip(vp.growth_step_mm, 0.2 * g.max_step_mm, g.max_step_mm)
    influence = jnp.maximum(vp.influence_mm, 2.0 * step)
    kill = jnp.clip(vp.kill_mm, step, influence)
    # The temporal half of the field is split at the raphe: an attractor there serves its own half only.
    attr_temporal = (attr[:, 0] - faz.center_mm[0]) * nasal_sign < 0
    attr_hemi = jnp.where(attr[:, 1] < faz.center_mm[1], -1.0, 1.0)

    pad = m - n_roots
    pos = jnp.concatenate([root_pos, jnp.zeros((pad, 2))])
    heading = jnp.concatenate([root_heading, jnp.zeros((pad, 2))])
    parent = jnp.full(m, -1, jnp.int32)
    tree = jnp.concatenate([jnp.arange(n_roots), jnp.zeros(pad, jnp.int32)]).astype(jnp.int32)
    exists = jnp.arange(m) < n_roots
    # Segment starts: a root's from one step outside the field, along its heading.
    # (Unused slots keep a short dummy segment: a zero-length one has no gradient, NaN, even where masked.)
    start = jnp.concatenate([root_pos - step * root_heading, jnp.full((pad, 2), 0.01)])

    d0 = jnp.sqrt(jnp.sum(jnp.square(attr[:, None] - root_pos[None]), -1) + 1e-12)  # [K, R]
    d0 = jnp.where((~attr_temporal[:, None] | (attr_hemi[:, None] == root_hemi[None]))
                   & serves(attr_kind[:, None], root_kind[None]), d0, jnp.inf)
    nearest = jnp.argmin(d0, axis=1).astype(jnp.int32)
    near_d = jnp.min(d0, axis=1)
    live = attr_live & (near_d > kill)
    noise = jnp.clip(jax.random.normal(k_noise, (n_steps, n_new)), -NOISE_CLIP, NOISE_CLIP)
    jitter = jax.random.uniform(k_rank, (n_steps, m), maxval=0.5)

    def grow_step(bound, state, x):
        # ``bound`` (static): no node exists in a slot >= bound yet (see ``scan_phases``).
        pos, heading, start, parent, tree, exists, nearest, near_d, live, used = state
        active = live & (near_d < influence)
        to_attr = attr - pos[nearest]
        unit = to_attr / (_norm(to_attr, keepdims=True) + 1e-9)
        w = active.astype(jnp.float32)
        pull = jax.ops.segment_sum(unit * w[:, None], nearest, num_segments=bound)
        count = jax.ops.segment_sum(w, nearest, num_segments=bound)
        # The nodes with the most attractors grow first (ties broken at random), up to n_new per step.
        priority = jnp.where(exists[:bound] & (count > 0), count + x["jitter"][:bound], -1.0)
        _, grower = jax.lax.top_k(priority, n_new)
        ok = priority[grower] > 0
        base = pos[grower]
        want = pull[grower] / (count[grower][:, None] + 1e-9)
        want = want / (_norm(want, keepdims=True) + 1e-9)
        direction = want + guidance(base, want, vp, faz.center_mm, nasal_sign) + vp.growth_inertia * heading[grower]
        direction = direction + jnp.array([1e-6, 0.0])  # arctan2(0, 0) has no gradient (NaN)
        angle = jnp.arctan2(direction[:, 1], direction[:, 0]) + HEADING_NOISE_SCALE * vp.tortuosity_rad * jnp.sqrt(step) * x["noise"]
        unit_dir = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
        new = base + step * unit_dir
        kind_g = root_kind[tree[grower]]
        # Refusals: into the FAZ, across the temporal raphe, across an existing segment of the same kind.
        ok &= faz.signed_depth_mm(new) < -0.25 * kill
        temporal_new = (new[:, 0] - faz.center_mm[0]) * nasal_sign < 0
        hemi_new = jnp.where(new[:, 1] < faz.center_mm[1], -1.0, 1.0)
        ok &= ~temporal_new | (hemi_new == root_hemi[tree[grower]])
        same_kind = root_kind[tree[:bound]][None, :] == kind_g[:, None]
        hit = segments_cross(base[:, None], new[:, None], start[None, :bound], pos[None, :bound]) & exists[None, :bound] & same_kind
        ok &= ~jnp.any(hit, axis=1)
        # ... and across an earlier new segment of this step (of the same kind).
        pair = segments_cross(base[:, None], new[:, None], base[None], new[None]) & (kind_g[:, None] == kind_g[None])
        earlier = jnp.arange(n_new)[None, :] < jnp.arange(n_new)[:, None]
        ok &= ~jnp.any(pair & earlier & ok[None, :], axis=1)
        slot = used + jnp.cumsum(ok) - 1
        ok &= slot < m  # capacity spent: the rest are dropped
        slot = jnp.where(ok, slot, m)  # m: out of range, dropped by the scatters
        pos = pos.at[slot].set(new, mode="drop")
        start = start.at[slot].set(base, mode="drop")
        heading = heading.at[slot].set(unit_dir, mode="drop")
        parent = parent.at[slot].set(grower.astype(jnp.int32), mode="drop")
        tree = tree.at[slot].set(tree[grower], mode="drop")
        exists = exists.at[slot].set(True, mode="drop")
        used = jnp.minimum(used + jnp.sum(ok), m)
        # Incremental nearest-node table: only the new nodes can be nearer than before.
        hemi_tree = root_hemi[tree[grower]]
        eligible = (~attr_temporal[:, None] | (attr_hemi[:, None] == hemi_tree[None])) & serves(attr_kind[:, None], kind_g[None])
        best, best_d = nearest_fn(attr, new, ok[None] & eligible)
        closer = best_d < near_d
        nearest = jnp.where(closer, slot[best], nearest).astype(jnp.int32)
        near_d = jnp.where(closer, best_d, near_d)
        live = live & (near_d > kill)
        return (pos, heading, start, parent, tree, exists, nearest, near_d, live, used), None

    state = (pos, heading, start, parent, tree, exists, nearest, near_d, live, jnp.int32(n_roots))
    xs = dict(noise=noise, jitter=jitter)
    phases = [(0, n_steps, m)] if reference else scan_phases(n_roots, n_new, n_steps, SCAN_PHASES)
    for first, stop, bound in phases:
        state, _ = jax.lax.scan(functools.partial(grow_step, bound), state, jax.tree.map(lambda v: v[first:stop], xs))
    pos, heading, start, parent, tree, exists, *_ = state
    exists = prune_twigs(parent, exists, g.min_twig_steps, n_steps + 1)
    leaves = leaf_counts(parent, exists, n_steps + 1)
    grown_pos = pos
    pos = smooth_paths(pos, parent, exists, leaves, SMOOTHING_PASSES)
    pos = untangle(pos, grown_pos, start, parent, exists, root_kind[tree])
    start = jnp.where((parent >= 0)[:, None], pos[jnp.maximum(parent, 0)], start)
    k = jnp.clip(vp.murray_exponent, 2.0, 3.5)
    # Leaf radii (fold_in keeps the other draws of the key as they were).
    z_tree = jax.random.normal(jax.random.fold_in(key, 1), (n_roots,))
    z_leaf = jax.random.normal(jax.random.fold_in(key, 2), (m,))
    leaf_r = vp.leaf_radius_um * jnp.exp(vp.tree_radius_sd * z_tree[tree] + vp.leaf_radius_sd * jnp.clip(z_leaf, -NOISE_CLIP, NOISE_CLIP))
    flow = leaf_counts(parent, exists, n_steps + 1, weight=leaf_r**k)
    radius = jnp.minimum(flow ** (1.0 / k), g.max_root_radius_um)
    return VesselGraph(
        start_mm=start,
        end_mm=pos,
        radius_um=radius,
        kind=root_kind[tree],
        parent=parent,
        perfusion=jnp.ones(m),
        valid=exists,
    )


def _height(parent, exists, max_depth: int):
    """Steps from each node down to its farthest leaf (scatter-max up the tree, ``max_depth`` passes)."""
    m = parent.shape[0]
    target = jnp.where(exists & (parent >= 0), parent, m)

    def body(_, h):
        return jnp.maximum(h, jax.ops.segment_max(h + 1, target, num_segments=m + 1)[:m])

    return jax.lax.fori_loop(0, max_depth, body, jnp.where(exists, 0, -1))


def prune_twigs(parent, exists, min_steps: int, max_depth: int):
    """Remove side twigs shorter than ``min_steps`` (with what they carry): a child of a junction that is
    not its tallest child and reaches fewer than ``min_steps`` steps. Space colonisation sprouts such stubs
    wherever a trunk passes an attractor; real side branches run on."""
    m = parent.shape[0]
    h = _height(parent, exists, max_depth)
    target = jnp.where(exists & (parent >= 0), parent, m)
    tallest = jax.ops.segment_max(h, target, num_segments=m + 1)
    n_child = jax.ops.segment_sum(exists.astype(jnp.int32), target, num_segments=m + 1)
    junction = n_child[target] >= 2
    stub = exists & (parent >= 0) & junction & (h + 1 < min_steps) & (h < tallest[target])
    keep = exists & ~stub

    def body(_, k):
        return k & jnp.where(parent >= 0, k[jnp.maximum(parent, 0)], True)

    return jax.lax.fori_loop(0, min_steps, body, keep)  # a stub's descendants are < min_steps deep


def smooth_paths(pos, parent, exists, leaves, passes: int):
    """Relax each node between its parent and its main child (the child feeding most leaves): the growth
    steps' zig-zag (attractors switching owner, heading noise) becomes a smooth course, as real vessels
    run. Roots and leaves stay put; every segment still starts at its parent's node."""
    m = parent.shape[0]
    target = jnp.where(exists & (parent >= 0), parent, m)
    score = jnp.where(exists, leaves.astype(jnp.int32) * m + jnp.arange(m), -1)
    best = jax.ops.segment_max(score, target, num_segments=m + 1)[:m]
    has_child = best >= 0
    child = jnp.where(has_child, best % m, 0)
    inner = exists & (parent >= 0) & has_child

    def body(_, p):
        mid = 0.5 * (p[jnp.maximum(parent, 0)] + p[child])
        return jnp.where(inner[:, None], 0.5 * p + 0.5 * mid, p)

    return jax.lax.fori_loop(0, passes, body, pos)


def untangle(smooth, grown, start, parent, exists, kind):
    """Node positions with no two same-kind segments crossing: the smoothed ones, except the ends of a
    segment that crosses another of its kind, which go back to where they grew (the growth refused every
    crossing, so the grown trees have none); and if the mixture still crosses anywhere, the grown ones.

    Relaxing the paths moves nodes by a fraction of a step, which is enough to tangle two paths of the same
    kind that grew side by side a few micrometres apart. One all-pairs test of the segments (parent to
    node; a root's from ``start``) per pass, two passes."""
    m = parent.shape[0]
    same = (kind[:, None] == kind[None]) & exists[:, None] & exists[None]
    target = jnp.where(exists & (parent >= 0), parent, m)

    def crossing(p):  # [M] whether the segment ending at each node crosses one of its kind
        s = jnp.where((parent >= 0)[:, None], p[jnp.maximum(parent, 0)], start)
        return jnp.any(segments_cross(s[:, None], p[:, None], s[None], p[None]) & same, axis=1)

    bad = crossing(smooth)
    bad = bad | (jax.ops.segment_max(bad.astype(jnp.int32), target, num_segments=m + 1)[:m] > 0)  # and its start
    pos = jnp.where(bad[:, None], grown, smooth)
    return jnp.where(jnp.any(crossing(pos)), grown, pos)


def leaf_counts(parent, exists, max_depth: int, weight=None):
    """Terminal branches fed by every node (at least 1), by walking up ``max_depth`` ancestors (each leaf
    adds one to every ancestor). With ``weight`` [M]: the sum of the leaves' weights instead (a node
    that is no leaf and feeds none, i.e. a slot not in use: its own weight)."""
    m = parent.shape[0]
    has_child = jax.ops.segment_sum(exists.astype(jnp.int32), jnp.where(exists, parent, m), num_segments=m + 1)[:m] > 0
    leaf = (exists & ~has_child).astype(jnp.float32)
    if weight is not None:
        leaf = leaf * weight

    def body(_, carry):
        leaves, anc = carry
        leaves = leaves + jax.ops.segment_sum(leaf, jnp.where(anc >= 0, anc, m), num_segments=m + 1)[:m]
        anc = jnp.where(anc >= 0, parent[jnp.maximum(anc, 0)], -1)
        return leaves, anc

    leaves, _ = jax.lax.fori_loop(0, max_depth, body, (leaf, parent))
    return jnp.maximum(leaves, 1.0) if weight is None else jnp.where(leaves > 0, leaves, weight)


def tree_group(cfg: SimConfig, start: int = 0) -> SegmentGroup:
    """One render group: every segment is about one growth step long."""
    g, px_um = cfg.growth, cfg.field.pixel_um
    span_um = 1000.0 * g.max_step_mm * SPAN_ALLOWANCE
    return SegmentGroup("tree", start, start + capacity(cfg), span_um / px_um, g.max_root_radius_um / px_um)
