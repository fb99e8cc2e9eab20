"""``batched_simulator``: jit(vmap(simulate)) per static config, traced once per process."""

from __future__ import annotations

import functools

from . import config as config_lib
from .pathology import PathologyConfig


@functools.lru_cache(maxsize=8)
def batched_simulator(sim: config_lib.SimConfig, pathology: PathologyConfig = PathologyConfig(), variability: float = 0.0):
    """jit(vmap(simulate)) for a static config, disease stage and parameter spread; call with (keys [B], params).

    With ``variability`` > 0 each sample's parameters are drawn around ``params`` from its own key
    (``svr_jax.variability``), so sample i stays a pure function of (config, seed, i).
    Cached per (config, stage, spread) so that later jobs in one process (benchmarks, tests, notebooks)
    reuse the traced program instead of tracing the large graph again (seconds, even with the disk cache)."""
    import jax

    from .simulate import simulate
    from .variability import per_sample_params

    return jax.jit(jax.vmap(lambda key, params: simulate(key, per_sample_params(key, params, variability), sim, pathology), in_axes=(0, None)))
