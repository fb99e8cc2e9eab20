"""The jobs the commands run: ``GenerateJob`` (what one generate or export run renders, and the hash
that names its config) and ``FitJob`` (one ``svr fit``)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Optional

from . import config as config_lib
from .pathology import PathologyConfig


@dataclasses.dataclass(frozen=True)
class GenerateJob:
    sim: config_lib.SimConfig
    params: config_lib.SimParams
    fov_name: str
    n: int
    first_index: int
    seed: int
    out: Path
    batch: int
    contact_sheet: bool
    masks: bool
    pathology: PathologyConfig = PathologyConfig()
    variability: float = 0.0

    def config_hash(self) -> str:
        return self._config_hash

    @functools.cached_property  # asked per exported row; the job is frozen, so compute it once
    def _config_hash(self) -> str:
        identity = dict(sim=dataclasses.asdict(self.sim), params=config_lib.params_to_dict(self.params), seed=self.seed)
        if self.pathology.active:  # a healthy run keeps the hash it had before the disease stage existed
            identity["pathology"] = dataclasses.asdict(self.pathology)
        if self.variability:  # likewise for runs without per-sample variability
            identity["variability"] = self.variability
        blob = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class FitJob:
    sim: config_lib.SimConfig
    params: config_lib.SimParams  # the start point
    fov_name: str
    data: Path
    half: Optional[str]  # the half of the split read ("fit"), or None: every eye (split=none)
    classes: tuple  # tuple of disease selections (one fit each)
    limit: Optional[int]
    steps: int
    batch: int
    lr: float
    seed: int
    fit_params: tuple
    eval_n: int
    out: Path
    resume: bool
    checkpoint_every: int
    joint: bool  # add the covariance-aware (whitened) distance of the feature vector to the loss
    joint_weight: float  # ... counted as this many statistic groups
    joint_shrinkage: float  # ... with the real correlation shrunk this far towards its diagonal
    variability: float  # per-sample parameter spread of the synthetic images (fit and evaluation)
