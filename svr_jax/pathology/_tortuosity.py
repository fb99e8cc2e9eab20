"""Arteriole/venule tortuosity: a sinusoidal lateral displacement along each tree branch.

Node t (fraction of the way along a branch of chord length L) moves by A · L · sin(π k t) across the
chord. The displacement vanishes at both ends (t = 0, 1), so bifurcations stay put and the tree stays
connected; k half-waves (2 or 3) give S-shaped and serpentine vessels. Its effect is measured by the
arc/chord index of ``measure.branch_tortuosity``.

The renderer's tree windows are static: with the disease stage on they allow ``SPAN_SLACK`` times the
healthy bound on a segment's extent, and each branch's amplitude is clipped so that none of its
segments exceeds that (a tortuous vessel is never cut by its window; the rare long straight branch
near the bound bends less).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..config import SimConfig
from ..graph import VesselGraph
from ..growth import tree_groups
from ._measure import branch_index

MAX_AMPLITUDE = 0.12  # fraction of the chord
MAX_HALF_WAVES = 3
SPAN_SLACK = 1.1  # tree windows' allowance for the displaced segments (render cost grows with its square)


def branch_span_bound_mm(cfg: SimConfig) -> np.ndarray:
    """[B] the largest per-axis extent a segment of each branch may have (its render group's bound)."""
    g = cfg.growth
    groups = tree_groups(cfg)
    bound = [np.full(g.n_roots * 2**gen, grp.max_span_px * SPAN_SLACK * cfg.field.pixel_um / 1000.0) for gen, grp in enumerate(groups)]
    return np.concatenate(bound)


def tortuosity(graph: VesselGraph, cfg: SimConfig, *, amplitude, half_waves) -> VesselGraph:
    """Deterministic twin: ``amplitude`` [B] (signed fraction of chord) and ``half_waves`` [B] per branch."""
    idx = branch_index(cfg)  # [B, S]
    steps = idx.shape[1]
    amplitude = jnp.clip(amplitude, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    half_waves = jnp.clip(half_waves, 0.0, MAX_HALF_WAVES)
    start, end = graph.start_mm[idx], graph.end_mm[idx]  # [B, S, 2]
    chord = end[:, -1] - start[:, 0]
    normal = jnp.stack([-chord[:, 1], chord[:, 0]], -1)  # length L: A * L * unit normal = A * normal
    t = jnp.arange(steps + 1) / steps
    wave = jnp.sin(jnp.pi * half_waves[:, None] * t[None])  # [B, S+1]
    # Keep every displaced segment inside its static window: span <= |v| + |A| |Δwave · normal|.
    change = jnp.max(jnp.abs((wave[:, 1:] - wave[:, :-1])[..., None] * normal[:, None]), axis=(1, 2))  # [B]
    span = jnp.max(jnp.abs(end - start), axis=(1, 2))
    room = jnp.maximum(jnp.asarray(branch_span_bound_mm(cfg)) - span, 0.0) / jnp.maximum(change, 1e-9)
    amplitude = jnp.clip(amplitude, -room, room)
    shift = (amplitude[:, None] * wave)[..., None] * normal[:, None]  # [B, S+1, 2]
    return dataclasses.replace(
        graph, start_mm=graph.start_mm.at[idx].add(shift[:, :-1]), end_mm=graph.end_mm.at[idx].add(shift[:, 1:])
    )


def random_tortuosity(key: jax.Array, graph: VesselGraph, cfg: SimConfig, *, amplitude) -> VesselGraph:
    """Per branch: amplitude · U(0.6, 1.4) with a random sign, 2 or 3 half-waves."""
    n = branch_index(cfg).shape[0]
    k_amp, k_sign, k_wave = jax.random.split(key, 3)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0)
    per_branch = amplitude * jax.random.uniform(k_amp, (n,), minval=0.6, maxval=1.4) * sign
    half_waves = jnp.where(jax.random.bernoulli(k_wave, 0.5, (n,)), 2.0, 3.0)
    return tortuosity(graph, cfg, amplitude=per_branch, half_waves=half_waves)
