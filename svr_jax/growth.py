"""Vessel growth: arteriole/venule trees entering from the field edge, and capillary meshes.

Everything is vectorised over branches/nodes with static shapes; the only Python loops run over the
(static, small) numbers of generations and steps per branch, unrolled once at trace time.

Trees. ``n_roots`` vessels enter from the field's edge, alternating artery/vein. Each branch is a
polyline of ``steps_per_branch`` segments whose heading performs a random walk (tortuosity) with a
mild pull towards the fovea (the oxygen demand of the parafovea) for thin branches and a push away
from it for thick ones, which therefore arc around it as the temporal arcades do. At the end of a branch it bifurcates under Murray's law, r^k = r1^k + r2^k, with the
bifurcation angles of minimum work (Zamir 1978): cos θ1 = (r^4 + r1^4 - r2^4) / (2 r^2 r1^2), so the
thicker child continues nearly straight and the thinner one leaves at a wide angle; its radius ratio to
the thicker is drawn around ``branch_ratio``, and its branch is shorter by that ratio to the power
``side_length_exponent`` (0: every branch of a generation is equally long). A branch stops
(with all it would feed) once it comes within a radius-dependent clearance of the FAZ border.

Capillaries. A jittered honeycomb (a brick lattice whose rows zig-zag: each node joined to its two
row neighbours and to one neighbour in the next or previous row, three capillaries meeting at a
junction, every edge of one length, so no direction is preferred) whose edges are quadratic curves split
into ``subdivisions`` segments. Nodes near the FAZ are snapped onto its border,
which produces the ring of capillaries that outlines a real FAZ; edges inside it are removed. Each edge
exists with probability ``presence``; its soft weight (a steep sigmoid of the same uniform draw) makes
the image differentiable in ``presence``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .config import SimConfig, VesselParams
from .faz import Faz
from .graph import ARTERY, VEIN, SegmentGroup, VesselGraph, concatenate

# Bounds that keep every segment inside its static splat window (see ``segment_groups``).
MAX_CAPILLARY_JITTER = 0.4
MAX_CAPILLARY_WIGGLE = 0.25
MAX_BRANCH_DECAY = 0.78
# Of the FAZ's mean radius: nodes outside the FAZ are then stretched along their circle by at most
# 1 / sqrt(1 - 0.6^2) = 1.25 (more only where the border bulges), and those nearest it snap onto it.
MAX_FOVEAL_DISPLACEMENT = 0.6
MAX_ROOT_VERTICAL_BIAS = 0.9  # below 1, where every entry would be at the top or bottom
MIN_ASYMMETRY = 0.2  # smallest thinner/thicker child radius ratio at a bifurcation
BRANCH_RATIO_SPREAD = 0.25  # the ratio is uniform within this of its mean, ``branch_ratio``
WARP_MODES = 2
WARP_WAVELENGTH = 6.0  # spacings
WARP_AMPLITUDE = 0.3  # spacings, per mode
FAZ_BAND = 0.35  # mesh nodes within this many spacings outside the FAZ border snap onto it
FAZ_REACH = 0.5  # nodes deeper than this many spacings inside the FAZ lose all edges


def _entry_point(center_mm: jax.Array, angle: jax.Array, fov_mm: float) -> jax.Array:
    """Where the ray from the fovea at ``angle`` leaves the (slightly enlarged) field square."""
    margin = 0.02 * fov_mm
    lo, hi = -margin, fov_mm + margin
    direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    safe = jnp.where(jnp.abs(direction) < 1e-6, 1e-6, direction)
    t_exit = jnp.where(safe > 0, (hi - center_mm) / safe, (lo - center_mm) / safe)
    t = jnp.min(t_exit, axis=-1)
    return center_mm + t[..., None] * direction


def _root_layout(key, vp: VesselParams, cfg: SimConfig, faz: Faz, nasal_sign):
    """Entry position, heading, radius and kind of each root vessel."""
    g, fov = cfg.growth, cfg.field.fov_mm
    n_edge = g.n_roots - g.disc_roots
    k_phase, k_jit, k_head, k_rad, k_kind, k_disc_y, k_disc_h = jax.random.split(key, 7)
    # Roots entering all around the field, evenly spread with jitter.
    phase = jax.random.uniform(k_phase, maxval=2 * jnp.pi)
    slots = jnp.arange(n_edge) + 0.6 * jax.random.uniform(k_jit, (n_edge,))
    angle = phase + 2 * jnp.pi * slots / max(n_edge, 1)
    # Crowded towards +-90 degrees (top and bottom): each direction's horizontal component shrinks by
    # 1 - b (a monotone warp of the circle; b = 0.8: 7 in 8 enter through the top or bottom edge).
    bias = jnp.clip(vp.root_vertical_bias, 0.0, MAX_ROOT_VERTICAL_BIAS)
    angle = jnp.where(bias > 0, jnp.arctan2(jnp.sin(angle), (1.0 - bias) * jnp.cos(angle)), angle)  # exact at 0
    pos_edge = _entry_point(faz.center_mm, angle, fov)
    # Inward heading: towards the fovea, deviated so vessels do not all aim at its centre.
    head_edge = angle + jnp.pi + 0.45 * jax.random.uniform(k_head, (n_edge,), minval=-1, maxval=1)
    # Roots from the optic disc (nasal side: +x for a right eye, -x for a left one): the superior and
    # inferior arcades, entering above and below the fovea and heading temporally.
    side = jnp.where(jnp.arange(g.disc_roots) % 2 == 0, -1.0, 1.0)
    offset_y = side * fov * jax.random.uniform(k_disc_y, (g.disc_roots,), minval=0.08, maxval=0.42)
    disc_x = 0.5 * fov + nasal_sign * 0.52 * fov
    pos_disc = jnp.stack([jnp.full((g.disc_roots,), disc_x), jnp.clip(faz.center_mm[1] + offset_y, 0.0, fov)], -1)
    tilt = side * jax.random.uniform(k_disc_h, (g.disc_roots,), minval=-0.15, maxval=0.35)  # away from the fovea
    head_disc = jnp.where(nasal_sign > 0, jnp.pi - tilt, tilt)
    pos = jnp.concatenate([pos_disc, pos_edge], 0)
    heading = jnp.concatenate([head_disc, head_edge], 0)
    radius = vp.root_radius_um + vp.root_radius_sd_um * jnp.clip(jax.random.normal(k_rad, (g.n_roots,)), -2, 2)
    radius = jnp.clip(radius, 0.3 * g.max_root_radius_um, g.max_root_radius_um)
    first_kind = jax.random.bernoulli(k_kind).astype(jnp.int32)
    kind = jnp.where((jnp.arange(g.n_roots) + first_kind) % 2 == 0, ARTERY, VEIN).astype(jnp.int32)
    return pos, heading, radius, kind


def _murray_angle(r0, r1, r2):
    """Minimum-work angle between parent r0 and child r1 when it splits into r1 and r2 (Zamir)."""
    # Clipped inside (-1, 1): arccos has an infinite slope at the ends, and inf * 0 would be NaN.
    return jnp.arccos(jnp.clip((r0**4 + r1**4 - r2**4) / (2 * r0**2 * r1**2), -1.0 + 1e-6, 1.0 - 1e-6))


def grow_trees(key: jax.Array, vp: VesselParams, cfg: SimConfig, faz: Faz, nasal_sign) -> VesselGraph:
    """Arteriole and venule trees: ``n_roots * (2**generations - 1) * steps_per_branch`` segments.

    The state has a fixed width of W = n_roots * 2**(generations - 1) branch slots; generation g uses
    the first n_roots * 2**g. One ``lax.scan`` runs over generations (a nested one over steps), so the
    loop body is compiled once; the unused slots cost little and are sliced away statically at the end.
    Segment layout: generation-major, then step, then branch.
    """
    g = cfg.growth
    n_steps, n_gen = g.steps_per_branch, g.generations
    width = g.n_roots * 2 ** (n_gen - 1)
    k_roots, k_walk, k_split = jax.random.split(key, 3)
    pos0, heading0, radius0, kind0 = _root_layout(k_roots, vp, cfg, faz, nasal_sign)
    pad = lambda x, fill: jnp.concatenate([x, jnp.full((width - g.n_roots,) + x.shape[1:], fill, x.dtype)])  # noqa: E731
    decay = jnp.clip(vp.branch_length_decay, 0.3, MAX_BRANCH_DECAY)
    murray = jnp.clip(vp.murray_exponent, 2.0, 3.5)
    length0 = jnp.clip(vp.branch_length_mm, 0.05, g.max_branch_length_mm)
    k_ratio, k_side = jax.random.split(k_split)
    per_generation = dict(
        gen=jnp.arange(n_gen),
        noise=jax.random.normal(k_walk, (n_gen, n_steps, width)),
        # (Drawn on [mean - spread, mean + spread] directly: at the default mean, 0.75, the very draws of
        # the fixed U(0.5, 1) this replaced, so existing (config, seed, index) images are unchanged.)
        ratio=jnp.clip(jax.random.uniform(k_ratio, (n_gen, width), minval=vp.branch_ratio - BRANCH_RATIO_SPREAD,
                                          maxval=vp.branch_ratio + BRANCH_RATIO_SPREAD), MIN_ASYMMETRY, 1.0),
        side=jnp.where(jax.random.bernoulli(k_side, shape=(n_gen, width)), 1.0, -1.0),
    )
    slot = jnp.arange(width)

    def generation(state, x):
        pos, heading, radius, kind, alive, side_factor = state
        step = length0 * decay ** x["gen"] * side_factor / n_steps
        # A vessel ends where it has come close enough to the FAZ to hand over to the capillaries:
        # thick vessels stop farther out (their branches go on), thin ones reach its border.
        stop_mm = vp.faz_clearance_mm * jnp.minimum(radius / 20.0, 1.5)

        def walk(carry, noise):
            pos, heading, alive = carry
            radial = pos - faz.center_mm
            dist = jnp.sqrt(jnp.sum(radial**2, -1) + 1e-12)
            radial = radial / dist[:, None]
            direction = jnp.stack([jnp.cos(heading), jnp.sin(heading)], -1)
            # The parafovea's oxygen demand draws thin branches towards the fovea; vessels thicker than
            # ``arcade_radius_um`` are pushed away from it instead, so they arc around it (the arcades).
            pull = (vp.fovea_attraction * jnp.minimum(step / 0.05, 2.0) * (1.0 - radius / vp.arcade_radius_um))[:, None]
            direction = direction - pull * radial
            heading = jnp.arctan2(direction[:, 1], direction[:, 0])
            heading = heading + vp.tortuosity_rad * jnp.sqrt(step) * noise
            new_pos = pos + step[:, None] * jnp.stack([jnp.cos(heading), jnp.sin(heading)], -1)
            alive = alive & (faz.signed_depth_mm(new_pos) < -stop_mm)
            return (new_pos, heading, alive), (pos, new_pos, alive)

        (pos, heading, alive), (starts, ends, valid) = jax.lax.scan(walk, (pos, heading, alive), x["noise"])
        out = dict(start=starts, end=ends, valid=valid, radius=radius, kind=kind)

        # Bifurcation under Murray's law: slot j of the next generation is child (j >= n) of branch j mod n.
        n = g.n_roots * 2 ** x["gen"]
        parent = slot % n
        minor = slot >= n
        r_parent, ratio, side = radius[parent], x["ratio"][parent], x["side"][parent]
        r_major = r_parent / (1.0 + ratio**murray) ** (1.0 / murray)
        r_minor = ratio * r_major
        turn = jnp.where(minor, -side * _murray_angle(r_parent, r_minor, r_major), side * _murray_angle(r_parent, r_major, r_minor))
        # A side branch is shorter than the trunk it leaves, by ratio ** side_length_exponent (<= 1, so
        # every branch stays within its generation's window bound): a trunk runs on, thin side branches
        # soon hand over to the capillaries. The factor accumulates down the tree.
        shorten = jnp.where(minor, ratio ** jnp.clip(vp.side_length_exponent, 0.0, 4.0), 1.0)
        state = (pos[parent], heading[parent] + turn, jnp.where(minor, r_minor, r_major), kind[parent], alive[parent],
                 side_factor[parent] * shorten)
        return state, out

    state0 = (pad(pos0, 0.0), pad(heading0, 0.0), pad(radius0, 1.0), pad(kind0, 0), pad(jnp.ones(g.n_roots, bool), False),
              jnp.ones(width))
    _, out = jax.lax.scan(generation, state0, per_generation)

    segments, offset = [], 0
    for gen in range(n_gen):
        n = g.n_roots * 2**gen
        # Slot of step s of branch b: offset + s * n + b. Its parent is step s-1 of b, or for s = 0 the
        # last step of the parent branch (b mod n/2) in the previous generation.
        index = offset + jnp.arange(n_steps * n).reshape(n_steps, n)
        first = (offset - n // 2 + jnp.arange(n) % (n // 2)) if gen else jnp.full(n, -1)
        parent = jnp.concatenate([first[None], index[:-1]], 0)
        segments.append(
            VesselGraph(
                start_mm=out["start"][gen, :, :n].reshape(-1, 2),
                end_mm=out["end"][gen, :, :n].reshape(-1, 2),
                radius_um=jnp.tile(out["radius"][gen, :n], n_steps),
                kind=jnp.tile(out["kind"][gen, :n], n_steps).astype(jnp.int32),
                parent=parent.reshape(-1).astype(jnp.int32),
                perfusion=jnp.ones(n_steps * n),
                valid=out["valid"][gen, :, :n].reshape(-1),
            )
        )
        offset += n_steps * n
    return concatenate(segments)


def tree_groups(cfg: SimConfig, start: int = 0) -> list[SegmentGroup]:
    """The trees' render groups: one per generation (radius and step length shrink together), or the
    single group of the space-colonisation trees."""
    if cfg.growth.architecture == "colonisation":
        from .colonisation import tree_group

        return [tree_group(cfg, start)]
    g, px_um = cfg.growth, cfg.field.pixel_um
    major = (1.0 + MIN_ASYMMETRY**3.5) ** (-1.0 / 3.5)  # largest possible child/parent radius ratio
    groups = []
    for gen in range(g.generations):
        n = g.n_roots * 2**gen * g.steps_per_branch
        step_um = 1000.0 * g.max_branch_length_mm * MAX_BRANCH_DECAY**gen / g.steps_per_branch
        groups.append(SegmentGroup(f"tree{gen}", start, start + n, step_um / px_um, g.max_root_radius_um * major**gen / px_um))
        start += n
    return groups


# Honeycomb geometry in units of the mesh spacing s (the square root of the area per node, so a mesh's
# node density and capillary length per area do not depend on its shape): edge length L, row pitch
# 1.5 L, column pitch L * sqrt(3) / 2, rows zig-zagging by +-L / 4.
HEX_EDGE = 1.0 / math.sqrt(1.5 * math.sqrt(3.0) / 2.0)
HEX_PITCH = (1.5 * HEX_EDGE, math.sqrt(3.0) / 2.0 * HEX_EDGE)  # (row, column), spacings
HEX_ZIGZAG = 0.25 * HEX_EDGE
# Each mesh is turned by a random small angle: an axis-aligned lattice keeps its rows in register across
# the whole field, which shows as periodic row means (a statistic real scans do not have).
MAX_MESH_TURN_RAD = math.radians(4.0)


def _mesh_shape(fov_mm: float, spacing_um: float) -> tuple[int, int]:
    """(rows, columns) of mesh nodes covering the field, also when turned, with a pitch to spare."""
    span_um = 1000.0 * fov_mm * (math.cos(MAX_MESH_TURN_RAD) + math.sin(MAX_MESH_TURN_RAD))
    return tuple(int(math.ceil(span_um / (spacing_um * pitch))) + 2 for pitch in HEX_PITCH)


def _brick_edges(shape: tuple[int, int]):
    """Node indices (row-major in a rows × columns grid) of the lattice's row edges and its row-to-row
    edges (from node (i, j) to (i + 1, j) where i + j is even)."""
    rows, cols = shape
    iy, ix = np.meshgrid(np.arange(rows), np.arange(cols - 1), indexing="ij")
    ha, hb = (iy * cols + ix).ravel(), (iy * cols + ix + 1).ravel()
    iy, ix = np.meshgrid(np.arange(rows - 1), np.arange(cols), indexing="ij")
    keep = ((iy + ix) % 2 == 0).ravel()
    va, vb = (iy * cols + ix).ravel()[keep], ((iy + 1) * cols + ix).ravel()[keep]
    return ha, hb, va, vb


def mesh_edges(fov_mm: float, spacing_um: float) -> int:
    return sum(len(e) for e in _brick_edges(_mesh_shape(fov_mm, spacing_um))[::2])


def grow_mesh(
    key: jax.Array,
    *,
    cfg: SimConfig,
    faz: Faz,
    spacing_um: float,
    subdivisions: int,
    kind: int,
    radius_um,
    jitter,
    wiggle,
    presence,
    displacement=0.0,
) -> VesselGraph:
    """A capillary mesh with ``mesh_edges(...) * subdivisions`` segment slots."""
    fov = cfg.field.fov_mm
    rows, cols = _mesh_shape(fov, spacing_um)
    s = spacing_um / 1000.0
    k_jit, k_wig, k_pres, k_rad, k_warp, k_turn = jax.random.split(key, 6)
    jitter = jnp.clip(jitter, 0.0, MAX_CAPILLARY_JITTER)
    wiggle = jnp.clip(wiggle, 0.0, MAX_CAPILLARY_WIGGLE)
    # Honeycomb centred on the field: a node whose row-to-row edge goes up sits a quarter edge higher,
    # its partner a quarter edge lower, so all three edges at a junction have one length.
    pitch_y, pitch_x = (s * p for p in HEX_PITCH)
    iy, ix = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    x = 0.5 * fov + pitch_x * (ix - 0.5 * (cols - 1))
    y = 0.5 * fov + pitch_y * (iy - 0.5 * (rows - 1)) + s * HEX_ZIGZAG * np.where((iy + ix) % 2 == 0, 1.0, -1.0)
    turn = jax.random.uniform(k_turn, minval=-MAX_MESH_TURN_RAD, maxval=MAX_MESH_TURN_RAD)
    cos, sin = jnp.cos(turn), jnp.sin(turn)
    x, y = x - 0.5 * fov, y - 0.5 * fov
    nodes = 0.5 * fov + jnp.stack([cos * x - sin * y, sin * x + cos * y], -1).astype(jnp.float32)
    nodes = nodes + jitter * s * jax.random.uniform(k_jit, (rows, cols, 2), minval=-1.0, maxval=1.0)
    # A smooth random warp bends the lattice's rows and columns, hiding its orientation.
    k_dir, k_phase = jax.random.split(k_warp)
    angle = jax.random.uniform(k_dir, (WARP_MODES,), maxval=2 * jnp.pi)
    wavevector = (2 * jnp.pi / (WARP_WAVELENGTH * s)) * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    phase = jax.random.uniform(k_phase, (WARP_MODES, 2), maxval=2 * jnp.pi)
    nodes = nodes + WARP_AMPLITUDE * s * jnp.sum(jnp.sin((nodes @ wavevector.T)[..., None] + phase), axis=-2)
    displacement_mm = jnp.clip(displacement, 0.0, MAX_FOVEAL_DISPLACEMENT) * faz.radius_mm
    nodes = displace_from_fovea(nodes, faz.center_mm, displacement_mm)
    # FAZ: snap the nodes near or inside its border onto it (radially), so the capillary-free zone is
    # exactly the FAZ shape and its border is lined by capillaries.
    depth = faz.signed_depth_mm(nodes)
    rho, theta = faz.polar(nodes)
    border = faz.center_mm + faz.border_radius_mm(theta)[..., None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    nodes = jnp.where((depth > -FAZ_BAND * s)[..., None], border, nodes)
    reach = depth <= FAZ_REACH * s

    ha, hb, va, vb = _brick_edges((rows, cols))
    flat = lambda x: x.reshape((rows * cols,) + x.shape[2:])  # noqa: E731
    nodes_f, depth_f, reach_f = flat(nodes), flat(depth), flat(reach)
    ia, ib = np.concatenate([ha, va]), np.concatenate([hb, vb])
    a, b = nodes_f[ia], nodes_f[ib]
    depth_a, depth_b = depth_f[ia], depth_f[ib]
    reach_ab = reach_f[ia] & reach_f[ib]
    n_edge = a.shape[0]
    # An edge with both ends inside the FAZ would be a chord across it.
    outside = jnp.minimum(depth_a, depth_b) < 0.25 * s
    draw = jax.random.uniform(k_pres, (n_edge,))
    valid = (draw < presence) & outside & reach_ab
    perfusion = jax.nn.sigmoid((presence - draw) / 0.02)
    radius = radius_um * jnp.exp(0.2 * jnp.clip(jax.random.normal(k_rad, (n_edge,)), -2, 2))

    # Quadratic curve through a control point offset perpendicular to the edge.
    chord = b - a
    normal = jnp.stack([-chord[:, 1], chord[:, 0]], -1)
    control = 0.5 * (a + b) + wiggle * jax.random.uniform(k_wig, (n_edge, 1), minval=-1.0, maxval=1.0) * normal
    t = jnp.linspace(0.0, 1.0, subdivisions + 1)[:, None, None]
    curve = (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b  # [S+1, E, 2]
    starts, ends = curve[:-1].reshape(-1, 2), curve[1:].reshape(-1, 2)
    tile = lambda x: jnp.tile(x, subdivisions)  # noqa: E731 - segment j of every edge, edge-major inside
    index = jnp.arange(subdivisions * n_edge)
    parent = jnp.where(index >= n_edge, index - n_edge, -1)
    return VesselGraph(
        start_mm=starts,
        end_mm=ends,
        radius_um=tile(radius),
        kind=jnp.full(subdivisions * n_edge, kind, jnp.int32),
        parent=parent.astype(jnp.int32),
        perfusion=tile(perfusion),
        valid=tile(valid),
    )


def displace_from_fovea(points_mm: jax.Array, center_mm: jax.Array, displacement_mm) -> jax.Array:
    """The foveal pit's displacement: a point at distance r from ``center_mm`` moves radially out to
    sqrt(r^2 + d^2). It keeps areas (so node density), and stretches the neighbourhood of a point that
    lands at r' along the circle by r' / sqrt(r'^2 - d^2) and squeezes it radially by as much, most at
    the fovea, fading as d^2 / r'^2 away from it; the identity at d = 0."""
    offset = points_mm - center_mm
    r2 = jnp.sum(offset**2, -1, keepdims=True)
    scale = jnp.sqrt((r2 + jnp.square(displacement_mm) + 1e-12) / (r2 + 1e-12))
    return points_mm + offset * (scale - 1.0)  # (not centre + offset * scale: exact at d = 0)


def mesh_group(cfg: SimConfig, name: str, start: int, spacing_um: float, subdivisions: int, *, scale: int = 1) -> SegmentGroup:
    """Static bound on a mesh segment's extent (in pixels of a canvas ``scale`` times coarser).

    An edge's chord spans at most (1 + 2 jitter) spacings along its axis (an edge is HEX_EDGE < 1
    spacing long; the jitter of its two ends differs by up to 2 jitter per axis); a piece of its curve is about
    chord / subdivisions. The bound is that, with a 5 % allowance for curvature: the rare piece that
    exceeds it (a strongly bent edge at the FAZ border, where nodes are snapped) is dropped from the
    sample by ``simulate.fits_windows`` rather than splatted partly; tests check this stays under 1e-4.
    """
    n_seg = mesh_edges(cfg.field.fov_mm, spacing_um) * subdivisions
    warp = WARP_MODES * WARP_AMPLITUDE * 2 * math.pi / WARP_WAVELENGTH  # largest stretch of one spacing
    piece_um = 1.05 * spacing_um * (1 + 2 * MAX_CAPILLARY_JITTER + warp) / subdivisions
    px_um = cfg.field.pixel_um * scale
    return SegmentGroup(name, start, start + n_seg, piece_um / px_um, cfg.growth.max_capillary_radius_um / px_um)
