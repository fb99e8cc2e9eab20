"""Arteriole/venule tortuosity: a sinusoidal lateral displacement along each tree branch.

Node t (fraction of the way along a branch of chord length L) moves by A · L · sin(π k t) across the
chord. The displacement vanishes at both ends (t = 0, 1), so bifurcations stay put and the tree stays
connected; k half-waves (2 or 3) give S-shaped and serpentine vessels. Its effect is measured by the
arc/chord index of ``measure.branch_tortuosity``.

The renderer's tree windows are static: with the disease stage on they allow ``SPAN_SLACK`` times the
healthy bound on a segment's extent, and each branch's amplitude is clipped so that none of its
segments exceeds that (a tortuous vessel is never cut by its window; the rare long straight branch
near the bound bends less).

The space-colonisation trees have no static branches; on them tortuosity is a smooth random warp of the
tree's nodes (``warp_tortuosity``): every node moves by the same function of its position, so segments
that meet keep meeting, and transverse waves of length ~0.4 mm bend every vessel they cross.
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

WARP_MODES = 3
WARP_WAVELENGTH_MM = (0.3, 0.5)

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


def warp_tortuosity(graph: VesselGraph, cfg: SimConfig, *, amplitude, direction, phase, wavelength_mm) -> VesselGraph:
    """Deterministic twin for colonisation trees: tree nodes p move by
    a λ / sqrt(M) Σ_m t_m sin(2π n_m · p / λ + φ_m), with n_m = (cos, sin) of ``direction`` [M] and t_m
    its normal (transverse waves); a = ``amplitude`` (fraction of the wavelength, like the fixed layout's
    fraction of a chord), clipped so that no segment outgrows its render window."""
    from ..colonisation import capacity

    n = capacity(cfg)
    k = jnp.stack([jnp.cos(direction), jnp.sin(direction)], -1)  # [M, 2]
    t = jnp.stack([-k[:, 1], k[:, 0]], -1)
    modes = k.shape[0]
    # The warp's gradient is at most 2π a sqrt(M): a segment of length D stretches to at most D (1 + that).
    from ..colonisation import SPAN_ALLOWANCE

    step = jnp.max(jnp.where(graph.valid[:n], graph.length_mm()[:n], 0.0))
    room = jnp.maximum(cfg.growth.max_step_mm * SPAN_ALLOWANCE * SPAN_SLACK / jnp.maximum(step, 1e-6) - 1.0, 0.0)
    a = jnp.clip(amplitude, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    bound = room / (2 * jnp.pi * jnp.sqrt(modes)) + 1e-6
    a = bound * jnp.tanh(a / bound)  # a soft clip: the stage's amplitude keeps its gradient

    def shift(p):
        arg = 2 * jnp.pi * (p @ k.T) / wavelength_mm + phase  # [..., M]
        return a * wavelength_mm / jnp.sqrt(modes) * (jnp.sin(arg) @ t)

    start = graph.start_mm.at[:n].add(shift(graph.start_mm[:n]))
    end = graph.end_mm.at[:n].add(shift(graph.end_mm[:n]))
    return dataclasses.replace(graph, start_mm=start, end_mm=end)


def random_tortuosity(key: jax.Array, graph: VesselGraph, cfg: SimConfig, *, amplitude) -> VesselGraph:
    """Per branch: amplitude · U(0.6, 1.4) with a random sign, 2 or 3 half-waves (fixed layout); a random
    warp of ``WARP_MODES`` transverse waves at ``amplitude`` (colonisation trees)."""
    if cfg.growth.architecture == "colonisation":
        k_dir, k_phase, k_len = jax.random.split(key, 3)
        return warp_tortuosity(
            graph, cfg, amplitude=amplitude,
            direction=jax.random.uniform(k_dir, (WARP_MODES,), maxval=2 * jnp.pi),
            phase=jax.random.uniform(k_phase, (WARP_MODES,), maxval=2 * jnp.pi),
            wavelength_mm=jax.random.uniform(k_len, minval=WARP_WAVELENGTH_MM[0], maxval=WARP_WAVELENGTH_MM[1]),
        )
    n = branch_index(cfg).shape[0]
    k_amp, k_sign, k_wave = jax.random.split(key, 3)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0)
    per_branch = amplitude * jax.random.uniform(k_amp, (n,), minval=0.6, maxval=1.4) * sign
    half_waves = jnp.where(jax.random.bernoulli(k_wave, 0.5, (n,)), 2.0, 3.0)
    return tortuosity(graph, cfg, amplitude=per_branch, half_waves=half_waves)
