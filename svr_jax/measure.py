"""Statistics measured from a rendered sample (masks + graph), never from the intended parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .config import SimConfig
from .graph import VesselGraph


def image_statistics(image: jax.Array, masks: dict, graph: VesselGraph, cfg: SimConfig, xp=jnp) -> dict:
    """Scalars of one sample; ``xp=np`` on fetched (float64) arrays is the host form the export writes."""
    px_mm2 = (cfg.field.pixel_um / 1000.0) ** 2
    return dict(
        faz_area_mm2=xp.sum(masks["faz"]) * px_mm2,
        vessel_density=xp.mean(masks["vessel"]),
        large_vessel_fraction=xp.mean(masks["large_vessel"]),
        image_mean=xp.mean(image),
        image_std=xp.std(image),
        segments=xp.sum(graph.valid),
    )
