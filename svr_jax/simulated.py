"""Simulated samples measured on the host: the bridge from a ``Sample`` to the text layer's ``Measured``
(the source of texts for ``svr check-text``, the export and the text statistics)."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .config import SimConfig, SimParams
from .text.measure import STAGES, Measured, measure


def simulated(cfg: SimConfig, params: SimParams, *, stage: str = "mixed", seed: int = 0, n: int = 64,
              first_index: int = 0, batch: int = 32) -> Iterator[tuple[int, Measured, np.ndarray, str]]:
    """Yield (index, measured, image [H, W], intended stage) for samples first_index .. first_index + n - 1."""
    import jax
    import jax.numpy as jnp

    from .batch import batched_simulator
    from .pathology import as_config
    from .simulate import sample_keys

    batch = max(1, min(batch, n))
    render = batched_simulator(cfg, as_config(stage))  # the exporters' program: compiled once per process
    for start in range(first_index, first_index + n, batch):
        count = min(batch, first_index + n - start)
        host = jax.device_get(render(sample_keys(seed, jnp.arange(start, start + batch)), params))
        for i in range(count):
            one = jax.tree.map(lambda a, i=i: a[i], host)
            yield start + i, measure_sample(one, cfg), np.asarray(one.image), STAGES[int(one.lesions.stage)]


def host_graph(graph):
    """The segment geometry of one fetched sample's graph, in float64 (what host measures read; the
    colonisation trees' tortuosity paths also follow ``parent`` and ``radius_um``)."""
    from types import SimpleNamespace

    return SimpleNamespace(start_mm=np.asarray(graph.start_mm, np.float64), end_mm=np.asarray(graph.end_mm, np.float64),
                           valid=np.asarray(graph.valid, bool), parent=np.asarray(graph.parent),
                           radius_um=np.asarray(graph.radius_um, np.float64))


def measure_sample(sample_np, cfg: SimConfig) -> Measured:
    """``Measured`` of one simulated sample whose arrays are on the host (``jax.device_get`` of a
    ``simulate`` result, unbatched).

    The tortuosity index is recomputed here in float64 from the graph: the device's float32 value
    can differ in its last bit between batch layouts (e.g. a batch split over two devices), and it
    reaches the text and the export's metadata."""
    from .pathology import findings_to_list, tortuosity_index

    return measure(
        image=sample_np.image,
        vessel_mask=sample_np.masks["vessel"],
        faz_mask=sample_np.masks["faz"],
        findings=findings_to_list(sample_np.lesions.findings),
        fov_mm=cfg.field.fov_mm,
        nasal_sign=float(sample_np.anatomy.nasal_sign),
        tortuosity_index=float(tortuosity_index(host_graph(sample_np.anatomy.graph), cfg, xp=np)),
    )
