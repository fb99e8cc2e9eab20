"""Population variability: per-sample parameters drawn around a preset (domain randomisation).

Real eyes and devices differ: FAZ size, capillary density, vessel calibre, signal strength, noise,
focus, motion. A preset is one point; models trained on it see every real scan as out of
distribution (``benchmarks/sim2real.py`` measures this). ``sample_params`` draws one sample's
parameters: each listed parameter is multiplied by a log-normal factor, exp(scale * sd * z) (signed ones
get scale * sd * z added instead; dimming fractions have their undimmed part 1 - value scaled), and
fractions are clipped to their valid range. Pure and key-first, vmap over keys.

The sds were set so that, at the scale the presets are fitted at (0.3), each statistic of the fitted
presets spreads about as much across synthetic eyes as across real normal ones (``spread_ratio`` of
``benchmarks/realism.py``; the trials: docs/experiments/fitting.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .config import SimParams
from .parameters import SPREADS as SPREADS

# The spread `svr generate`, `svr export` and `svr fit` use by default: the presets are fitted as a
# population at this scale, so generating at another one leaves the fitted population.
DEFAULT_VARIABILITY = 0.3
FRACTIONS = {"capillary_presence", "deep_presence"}  # probabilities: kept in (0, 1]
ADDITIVE = {"falloff"}  # spread as value + scale * sd * z instead of a log-normal factor
# Dimming fractions in [0, 1]: the part left undimmed, 1 - value, takes the log-normal factor and is
# clipped to [0, 1] (a log-normal factor on the dim itself would push dims near 1 past full darkness).
COMPLEMENTS = {"foveal_background_dim"}


def sample_params(key: jax.Array, params: SimParams, scale: float | jax.Array = 1.0) -> SimParams:
    """One sample's parameters around ``params``; ``scale=0`` returns ``params`` unchanged."""
    z = jax.random.normal(key, (len(SPREADS),))
    groups = {g: dict(vars(getattr(params, g))) for g in ("vessels", "appearance")}
    for i, (group, name, sd) in enumerate(SPREADS):
        if name in ADDITIVE:
            value = groups[group][name] + scale * sd * z[i]
        elif name in COMPLEMENTS:
            value = 1.0 - jnp.clip((1.0 - groups[group][name]) * jnp.exp(scale * sd * z[i]), 0.0, 1.0)
        else:
            value = groups[group][name] * jnp.exp(scale * sd * z[i])
        groups[group][name] = jnp.clip(value, 0.05, 1.0) if name in FRACTIONS else value
    return dataclasses.replace(
        params,
        vessels=dataclasses.replace(params.vessels, **groups["vessels"]),
        appearance=dataclasses.replace(params.appearance, **groups["appearance"]),
    )


def variability_key(sample_key: jax.Array) -> jax.Array:
    """The key of a sample's parameter draw: derived from, and independent of, its simulation key."""
    return jax.random.fold_in(sample_key, 0x7A12)


def per_sample_params(sample_key: jax.Array, params: SimParams, scale: float | jax.Array) -> SimParams:
    """The parameters the sample of ``sample_key`` is simulated with: drawn around ``params`` at ``scale``.

    A Python ``scale`` of 0 returns ``params`` and traces no draw. A traced ``scale`` (one compiled
    program for every spread) returns ``params`` exactly where it is 0: ``sample_params`` at scale 0
    rounds the dimming complements and clips the fractions."""
    if not isinstance(scale, jax.Array):
        return sample_params(variability_key(sample_key), params, scale) if scale else params
    drawn = sample_params(variability_key(sample_key), params, scale)
    return jax.tree.map(lambda d, p: jnp.where(scale > 0, d, p), drawn, params)


def default_variability() -> float:
    """The per-sample parameter spread `svr generate`/`svr export`/`svr fit` use unless told otherwise
    (``DEFAULT_VARIABILITY``): the benchmarks simulate at it too."""
    return DEFAULT_VARIABILITY
