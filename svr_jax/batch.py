"""``batched_simulator``: jit(vmap(simulate)) per static config, traced once per process for every stage mixture and spread."""

from __future__ import annotations

import functools

from . import config as config_lib
from .pathology import PathologyConfig


@functools.lru_cache(maxsize=8)
def _batched_program(sim: config_lib.SimConfig, healthy: bool):
    """jit(vmap(simulate)) of (keys [B], params, stage weights, spread): the stage mixture and the spread
    are arguments, so one compiled program serves every DR setting and spread at a config ("normal"
    keeps its own, the healthy pipeline without disease code)."""
    import jax

    from .simulate import simulate
    from .variability import per_sample_params

    def one(key, params, weights, variability):
        return simulate(key, per_sample_params(key, params, variability), sim, "normal" if healthy else weights)

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))


def batched_simulator(sim: config_lib.SimConfig, pathology: PathologyConfig = PathologyConfig(), variability: float = 0.0):
    """jit(vmap(simulate)) for a config, disease stage and parameter spread; call with (keys [B], params).

    With ``variability`` > 0 each sample's parameters are drawn around ``params`` from its own key
    (``svr_jax.variability``), so sample i stays a pure function of (config, seed, i).
    The compiled program is cached per config (and healthy or not), so later jobs in one process
    (benchmarks, tests, notebooks) reuse it for any stage mixture and spread."""
    import jax.numpy as jnp

    from .pathology import stage_weights

    program = _batched_program(sim, not pathology.active)
    weights, spread = jnp.asarray(stage_weights(pathology)), jnp.float32(variability)
    return lambda keys, params: program(keys, config_lib.as_float32(params), weights, spread)
