"""Simulating samples and measuring them in batches (the source of texts for checks and statistics)."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .config import SimConfig, SimParams
from .text.measure import STAGES, Measured, measure_sample


def simulated(cfg: SimConfig, params: SimParams, *, stage: str = "mixed", seed: int = 0, n: int = 64,
              first_index: int = 0, batch: int = 32) -> Iterator[tuple[int, Measured, np.ndarray, str]]:
    """Yield (index, measured, image [H, W], intended stage) for samples first_index .. first_index + n - 1."""
    import jax
    import jax.numpy as jnp

    from .simulate import sample_keys, simulate

    batch = max(1, min(batch, n))
    render = jax.jit(jax.vmap(lambda key, p: simulate(key, p, cfg, stage), in_axes=(0, None)))
    for start in range(first_index, first_index + n, batch):
        count = min(batch, first_index + n - start)
        host = jax.device_get(render(sample_keys(seed, jnp.arange(start, start + batch)), params))
        for i in range(count):
            one = jax.tree.map(lambda a, i=i: a[i], host)
            yield start + i, measure_sample(one, cfg), np.asarray(one.image), STAGES[int(one.lesions.stage)]
