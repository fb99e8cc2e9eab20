"""Simulating samples and measuring them in batches (the source of texts for checks and statistics)."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..config import SimConfig, SimParams
from .measure import STAGES, Measured, measure_sample


def enable_compilation_cache() -> None:
    """Persist compiled programs across runs (as ``svr generate`` does): ``$SVR_JAX_CACHE``."""
    import os
    from pathlib import Path

    import jax

    cache = os.environ.get("SVR_JAX_CACHE", str(Path.home() / ".cache" / "svr_jax" / "xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def sim_and_params(fov_name: str, size_px=None, fov_mm=None, fov_params=None, user_params=None):
    """Preset -> static config and parameters with the preset's values and overrides (as ``svr generate``)."""
    import dataclasses

    from .. import config as config_lib

    sim = config_lib.preset(fov_name)
    if size_px is not None or fov_mm is not None:
        field = dataclasses.replace(
            sim.field,
            size_px=sim.field.size_px if size_px is None else int(size_px),
            fov_mm=sim.field.fov_mm if fov_mm is None else float(fov_mm),
        )
        sim = dataclasses.replace(sim, field=field)
    config_lib.validate(sim)
    params = config_lib.params_from_dict(config_lib.default_params(sim), fov_params)
    return sim, config_lib.params_from_dict(params, user_params)


def simulated(cfg: SimConfig, params: SimParams, *, stage: str = "mixed", seed: int = 0, n: int = 64,
              first_index: int = 0, batch: int = 32) -> Iterator[tuple[int, Measured, np.ndarray, str]]:
    """Yield (index, measured, image [H, W], intended stage) for samples first_index .. first_index + n - 1."""
    import jax
    import jax.numpy as jnp

    from ..simulate import sample_keys, simulate

    batch = max(1, min(batch, n))
    render = jax.jit(jax.vmap(lambda key, p: simulate(key, p, cfg, stage), in_axes=(0, None)))
    for start in range(first_index, first_index + n, batch):
        count = min(batch, first_index + n - start)
        host = jax.device_get(render(sample_keys(seed, jnp.arange(start, start + batch)), params))
        for i in range(count):
            one = jax.tree.map(lambda a, i=i: a[i], host)
            yield start + i, measure_sample(one, cfg.field.fov_mm), np.asarray(one.image), STAGES[int(one.lesions.stage)]
