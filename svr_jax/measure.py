"""Statistics measured from a rendered sample (masks + graph), never from the intended parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .config import SimConfig
from .graph import VesselGraph


def image_statistics(image: jax.Array, masks: dict, graph: VesselGraph, cfg: SimConfig) -> dict:
    px_mm2 = (cfg.field.pixel_um / 1000.0) ** 2
    return dict(
        faz_area_mm2=jnp.sum(masks["faz"]) * px_mm2,
        vessel_density=jnp.mean(masks["vessel"]),
        large_vessel_fraction=jnp.mean(masks["large_vessel"]),
        image_mean=jnp.mean(image),
        image_std=jnp.std(image),
        segments=jnp.sum(graph.valid),
    )
