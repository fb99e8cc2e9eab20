"""Hydra schemas generated from the library's dataclasses, so configs and code cannot drift apart.

``params`` overrides are typed but optional: every field defaults to ``None`` (= keep the preset's
value), so a preset's fitted values and a user's ``params.appearance.gain=1.3`` both overlay the
library defaults, and a misspelt key is rejected by Hydra.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from omegaconf import OmegaConf

from ..config import SimParams
from ..pathology import STAGES, PathologyConfig
from ..text.tasks import DEFAULT_TASK_MIXTURE, TASKS


def optional_schema(cls: type, name: str | None = None) -> type:
    fields = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            sub = optional_schema(type(default))
            fields.append((f.name, sub, dataclasses.field(default_factory=sub)))
        else:
            fields.append((f.name, Optional[float], dataclasses.field(default=None)))
    return dataclasses.make_dataclass(name or f"{cls.__name__}Override", fields)


ParamsOverride = optional_schema(SimParams, "ParamsOverride")


def weights_schema(name: str, names: tuple[str, ...], weights: tuple[float, ...]) -> type:
    """A schema with one float field per name, defaulting to the library's weights (one source)."""
    return dataclasses.make_dataclass(name, [(n, float, dataclasses.field(default=w)) for n, w in zip(names, weights)])


# Probabilities of the stages for ``stage=mixed`` (normalised; any non-negative weights).
StageMixtureSchema = weights_schema("StageMixtureSchema", STAGES, PathologyConfig().mixture)
# Task mixture of an export's conversation records (weights, normalised).
TaskMixtureSchema = weights_schema("TaskMixtureSchema", TASKS, DEFAULT_TASK_MIXTURE)


@dataclasses.dataclass
class FovSchema:
    name: str = "3mm"  # a preset: svr_jax/conf/fov/<name>.yaml
    params: Any = dataclasses.field(default_factory=ParamsOverride)


@dataclasses.dataclass
class StageSchema:
    name: str = "normal"  # normal | mild | moderate | severe | pdr | mixed
    mixture: Any = dataclasses.field(default_factory=StageMixtureSchema)


def overrides_dict(node: Any) -> dict:
    """Nested plain dict of the values that are set (not None)."""
    container = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node

    def prune(d):
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                value = prune(value)
                if value:
                    out[key] = value
            elif value is not None:
                out[key] = value
        return out

    return prune(container or {})


def require_at_least(cfg: Any, minimum: int, *names: str) -> None:
    """ValueError naming the first of ``names`` whose value in ``cfg`` is below ``minimum``."""
    for name in names:
        if cfg[name] < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {cfg[name]}")
