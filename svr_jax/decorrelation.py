"""Simulated OCTA decorrelation: the device's measurement drawn, not a noise model assumed.

An OCTA device scans each B-scan twice and maps how much the two OCT amplitudes decorrelate; the en-face
image averages that over the slab's depth samples ("looks"). A look lies either in flowing blood, where
the speckle is renewed between the scans and the two amplitudes are independent Rayleigh draws, or in
static tissue, where both scans see one speckle and differ only by the OCT's noise. One look's amplitude
decorrelation, 1 - 2 a1 a2 / (a1^2 + a2^2), is bounded, skewed and signal dependent; averaged over a
few looks it gives the fine-scale texture whose statistics real scans share (the near-exact relations
between ridge, local-contrast and high-frequency statistics that a log-normal factor on the signal
misses: README, "The decorrelation model").

For independent Rayleigh amplitudes a1^2 / (a1^2 + a2^2) is uniform on (0, 1), so a flow look's
decorrelation is 1 - 2 sqrt(t (1 - t)) with t uniform: mean 1 - pi / 4. The result is divided by that
mean, so a pixel whose every look is in flow has mean 1 and a small flow fraction p has mean about p,
the scale of the signal it replaces.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

FLOW_MEAN = 1.0 - math.pi / 4.0  # mean decorrelation of a look in flow (independent Rayleigh amplitudes)
MIX_SOFTNESS = 0.02  # width of the soft step whose gradient stands in for a look's flow/static draw


def amplitude_decorrelation(a1: jax.Array, a2: jax.Array) -> jax.Array:
    """One look's decorrelation of two amplitudes: 0 when equal, towards 1 when one dominates."""
    return 1.0 - 2.0 * a1 * a2 / (a1**2 + a2**2 + 1e-12)


def simulated_decorrelation(key: jax.Array, flow_fraction: jax.Array, noise, looks: int) -> jax.Array:
    """[H, W] flow fraction p in [0, 1] (the share of the slab's depth samples in flowing blood) ->
    [H, W] mean decorrelation over ``looks`` looks, in units of ``FLOW_MEAN``.

    ``noise``: the OCT noise amplitude relative to static tissue's (per complex component); it alone
    decorrelates static tissue. Each look is in flow with probability p (an exact Bernoulli draw whose
    gradient is a soft step's, so it reaches p). Pure and key-first; ``looks`` is static (the draws' shape)."""
    shape = (looks,) + flow_fraction.shape
    k_flow, k_static, k_mix = jax.random.split(key, 3)
    t = jax.random.uniform(k_flow, shape, minval=1e-6, maxval=1.0 - 1e-6)
    flow = 1.0 - 2.0 * jnp.sqrt(t * (1.0 - t))
    # Static tissue: one speckle (the complex amplitude c) seen twice, each time with its own noise.
    z = jax.random.normal(k_static, (6,) + shape)
    c_re, c_im = z[0], z[1]
    a1 = jnp.sqrt((c_re + noise * z[2]) ** 2 + (c_im + noise * z[3]) ** 2)
    a2 = jnp.sqrt((c_re + noise * z[4]) ** 2 + (c_im + noise * z[5]) ** 2)
    static = amplitude_decorrelation(a1, a2)
    # Each look in flow with probability p: drawn exactly, differentiated as a soft step (straight through).
    u = jax.random.uniform(k_mix, shape)
    soft = jax.nn.sigmoid((flow_fraction - u) / MIX_SOFTNESS)
    in_flow = (u < flow_fraction).astype(soft.dtype) + soft - jax.lax.stop_gradient(soft)
    return jnp.mean(in_flow * flow + (1.0 - in_flow) * static, axis=0) / FLOW_MEAN
