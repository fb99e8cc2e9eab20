"""The presets: static config plus fitted parameters, as ``svr generate fov=<name>`` uses them.

A preset's fitted values are package data (``svr_jax/conf/fov/<name>.yaml``, the Hydra ``fov`` group of
the CLI), so an installed wheel generates the same images as a checkout.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import config as config_lib


def conf_dir() -> Path:
    """The Hydra config folder: ``$SVR_CONF_DIR`` or the package's ``svr_jax/conf``."""
    return Path(os.environ.get("SVR_CONF_DIR", Path(__file__).resolve().parent / "conf"))


def sim_and_params(fov_name: str, size_px, fov_mm, fov_params: dict, user_params: dict, architecture=None):
    """Preset -> static config and parameters with the preset's fitted values and user overrides;
    ``architecture`` ("branching" | "colonisation", None: the preset's) picks the vessel trees."""
    from . import config as config_lib
    from .parameters import check_params

    if size_px is not None and size_px <= 0:
        raise ValueError(f"size_px must be > 0, got {size_px}")
    if fov_mm is not None and not (fov_mm > 0 and math.isfinite(fov_mm)):
        raise ValueError(f"fov_mm must be > 0 and finite, got {fov_mm}")
    sim = config_lib.preset(fov_name)
    if size_px is not None or fov_mm is not None:
        field = dataclasses.replace(
            sim.field,
            size_px=sim.field.size_px if size_px is None else int(size_px),
            fov_mm=sim.field.fov_mm if fov_mm is None else float(fov_mm),
        )
        sim = dataclasses.replace(sim, field=field)
    if architecture is not None:
        sim = dataclasses.replace(sim, growth=dataclasses.replace(sim.growth, architecture=str(architecture)))
    config_lib.validate(sim)
    params = config_lib.default_params(sim)
    params = config_lib.params_from_dict(params, fov_params)
    params = config_lib.params_from_dict(params, user_params)
    check_params(params)
    return sim, params


def preset_params(fov_name: str, architecture: str | None = None) -> tuple[config_lib.SimConfig, config_lib.SimParams]:
    """The static config and the parameters `svr generate fov=<fov_name> [architecture=...]` uses: the
    library defaults overlaid with the fitted values in ``conf/fov/<fov_name>.yaml``."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(conf_dir() / "fov" / f"{fov_name}.yaml")
    return sim_and_params(fov_name, None, None, OmegaConf.to_container(node.get("params") or {}, resolve=True), {},
                          architecture)


