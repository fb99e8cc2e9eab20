"""Simulated OCTA decorrelation: the device's measurement drawn, not a noise model assumed.

An OCTA device scans each B-scan twice and maps how much the two OCT amplitudes decorrelate; the en-face
image averages that over the slab's depth samples ("looks"). A look lies either in flowing blood, where
the speckle is renewed between the scans and the two amplitudes are independent Rayleigh draws, or in
static tissue, where both scans see one speckle and differ only by the OCT's noise. One look's amplitude
decorrelation, 1 - 2 a1 a2 / (a1^2 + a2^2), is bounded, skewed and signal dependent; averaged over a
few looks it gives the fine-scale texture whose statistics real scans share (the near-exact relations
between ridge, local-contrast and high-frequency statistics that a log-normal factor on the signal
misses: docs/design.md, docs/experiments/fitting.md).

A look is drawn from two uniforms, not from the two scans' six Gaussians (4x cheaper here, the same
distribution; tests/sim/test_decorrelation.py checks it against a slow reference that draws the scans).
Write the scans' complex amplitudes as z1,2 = m +- d. For circular Gaussian fields m and d are
independent, so |d|^2 / |m|^2 = kappa w / (1 - w) with w uniform (a ratio of two exponentials) and kappa
= var d / var m: 1 in flow (z1, z2 independent), noise^2 / (2 + noise^2) in static tissue (z = c +
noise n, where d holds only noise). With phi, the angle between m and d, uniform:

    decorrelation = 1 - sqrt(1 - q),   q = 4 kappa w (1 - w) cos^2 phi / ((1 - w) + kappa w)^2.

A flow look's mean is 1 - pi / 4; the result is divided by it, so a pixel whose every look is in flow has
mean 1 and a small flow fraction p has mean about p, the scale of the signal it replaces.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

FLOW_MEAN = 1.0 - math.pi / 4.0  # mean decorrelation of a look in flow (independent Rayleigh amplitudes)
MIX_SOFTNESS = 0.02  # width of the soft step whose gradient stands in for a look's flow/static draw


def look_decorrelation(w: jax.Array, cos2_phi: jax.Array, kappa) -> jax.Array:
    """One look's decorrelation from a uniform ``w`` in (0, 1), cos^2 of a uniform angle and the scans'
    difference-to-mean variance ratio ``kappa`` (module docstring). kappa = 1: flow; 0: no decorrelation."""
    q = 4.0 * kappa * w * (1.0 - w) * cos2_phi / ((1.0 - w) + kappa * w) ** 2
    return q / (1.0 + jnp.sqrt(jnp.clip(1.0 - q, 0.0, 1.0)))  # 1 - sqrt(1 - q), exact for small q too


def look_draws(bits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """[2, looks, H, W] uint32 -> (u, w, cos^2 phi), each [looks, H, W]. Two 32-bit words per look: the
    flow/static draw u and the angle take 16 bits each, w 23 (its tail near 1 sets static tissue's rare
    large decorrelations). Midpoints: every draw lies strictly inside (0, 1)."""
    u = ((bits[0] >> 16).astype(jnp.float32) + 0.5) * 2.0**-16
    cos2_phi = jnp.cos(jnp.pi * 2.0**-16 * ((bits[0] & 0xFFFF).astype(jnp.float32) + 0.5)) ** 2
    w = ((bits[1] >> 9).astype(jnp.float32) + 0.5) * 2.0**-23
    return u, w, cos2_phi


def flow_look(w: jax.Array) -> jax.Array:
    """A flow look: a1^2 / (a1^2 + a2^2) is uniform for independent amplitudes, so 1 - 2 sqrt(w (1 - w))
    is the kappa = 1 law in fewer operations."""
    return 1.0 - 2.0 * jnp.sqrt(w * (1.0 - w))


@jax.custom_vjp
def mean_of_looks(flow_fraction: jax.Array, kappa: jax.Array, bits: jax.Array) -> jax.Array:
    """[H, W] flow fraction, static tissue's kappa, the looks' random words -> [H, W] mean decorrelation in
    units of ``FLOW_MEAN``: each look in flow where its u < p (an exact Bernoulli draw).

    The gradient is a straight-through soft step's (d/dp of a look: the soft step's slope at p - u times
    flow - static; d/dkappa: the static looks'), computed in the forward pass as two [H, W] sums so that
    the backward pass keeps no per-look arrays (their memory traffic dominated a fit step)."""
    u, w, cos2_phi = look_draws(bits)
    return jnp.mean(jnp.where(u < flow_fraction, flow_look(w), look_decorrelation(w, cos2_phi, kappa)), axis=0) / FLOW_MEAN


def _mean_of_looks_fwd(flow_fraction, kappa, bits):
    u, w, cos2_phi = look_draws(bits)
    flow = flow_look(w)
    static, d_static = jax.jvp(lambda k: look_decorrelation(w, cos2_phi, k), (kappa,), (jnp.ones_like(kappa),))
    in_flow = u < flow_fraction
    z = (flow_fraction - u) / MIX_SOFTNESS
    slope = jax.nn.sigmoid(z) * jax.nn.sigmoid(-z) / MIX_SOFTNESS
    out = jnp.mean(jnp.where(in_flow, flow, static), axis=0) / FLOW_MEAN
    d_flow_fraction = jnp.mean(slope * (flow - static), axis=0) / FLOW_MEAN
    d_kappa = jnp.mean(jnp.where(in_flow, 0.0, d_static), axis=0) / FLOW_MEAN
    return out, (d_flow_fraction, d_kappa)


def _mean_of_looks_bwd(residuals, g):
    d_flow_fraction, d_kappa = residuals
    return g * d_flow_fraction, jnp.sum(g * d_kappa), None


mean_of_looks.defvjp(_mean_of_looks_fwd, _mean_of_looks_bwd)


def simulated_decorrelation(key: jax.Array, flow_fraction: jax.Array, noise, looks: int) -> jax.Array:
    """[H, W] flow fraction p in [0, 1] (the share of the slab's depth samples in flowing blood) ->
    [H, W] mean decorrelation over ``looks`` looks, in units of ``FLOW_MEAN``.

    ``noise``: the OCT noise amplitude relative to static tissue's (per complex component); it alone
    decorrelates static tissue. Each look is in flow with probability p (an exact Bernoulli draw whose
    gradient is a soft step's, so it reaches p). Pure and key-first; ``looks`` is static (the draws' shape)."""
    bits = jax.random.bits(key, (2, looks) + flow_fraction.shape, jnp.uint32)
    return mean_of_looks(flow_fraction, jnp.asarray(noise**2 / (2.0 + noise**2), jnp.float32), bits)
