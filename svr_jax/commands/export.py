"""``svr export``: image + reasoning pairs as Parquet shards, resumable, reproducible, verifiable.

    svr export n=100000 out=data/octa100k stage=mixed shard_size=1000
    svr export verify out=data/octa100k
    svr export -m n=100000 out=data/octa100k shards=0:25,25:50,50:75,75:100 hydra/launcher=joblib

Sample i is a pure function of (config, seed, i), so a shard can be produced by any worker in any
order: with ``shards=a:b`` a process produces only shards [a, b) (Hydra multirun sweeps such ranges
over the joblib or submitit launchers, ``conf/hydra/launcher/``). Each shard is written under a
temporary name and renamed when complete, with a sidecar ``<shard>.json`` (rows, sha256, stages);
``manifest.json`` is rebuilt from the sidecars after every shard, with no timestamps, so the same config
always gives the same manifest. A re-run skips shards whose bytes match their sidecar and redoes the
rest; ``verify`` re-hashes every shard and names the missing or corrupt ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import __version__
from ..export import shards as shard_lib
from ..pathology import STAGES
from .generate import (FovSchema, GenerateJob, StageSchema, enable_compilation_cache, parse_pathology, parse_variability,
                       sim_and_params)
from .schema import ParamsOverride, overrides_dict, require_at_least

DEFAULT_TASKS = dict(reasoning=0.5, dr_yes_no=0.1, stage=0.1, count_ma=0.1, grounding=0.1, caption=0.1)
MASK_COLUMNS = ("vessel", "artery", "vein", "capillary", "large_vessel", "faz")


@dataclasses.dataclass
class TaskMixtureSchema:
    reasoning: float = 0.5
    dr_yes_no: float = 0.1
    stage: float = 0.1
    count_ma: float = 0.1
    grounding: float = 0.1
    caption: float = 0.1


@dataclasses.dataclass
class ExportSchema:
    action: str = "export"  # export | verify
    n: int = 256
    seed: int = 0
    out: str = "out/export"
    shard_size: int = 128
    shards: Optional[str] = None  # "a:b": produce only shards a..b-1 (for multirun workers)
    batch: int = 16
    size_px: Optional[int] = None
    fov_mm: Optional[float] = None
    masks: bool = True  # mask PNG columns in the shards
    variability: float = 0.3  # per-sample parameter spread around the preset (svr_jax.variability); 0: none
    llamafactory: bool = True  # JSONL + image folder view with dataset_info.json
    card: bool = True  # dataset card (README.md + plots) when all shards are present
    tasks: TaskMixtureSchema = dataclasses.field(default_factory=TaskMixtureSchema)
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    stage: StageSchema = dataclasses.field(default_factory=StageSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = ExportSchema  # registered by the CLI as "export_schema" (conf/*.yaml defaults)


@dataclasses.dataclass(frozen=True)
class ExportJob:
    action: str
    base: GenerateJob  # simulation settings, seed and output folder
    shard_size: int
    shard_range: tuple[int, int] | None
    tasks: tuple[tuple[str, float], ...]
    masks: bool
    llamafactory: bool
    card: bool

    @property
    def out(self) -> Path:
        return self.base.out

    def identity(self) -> dict:
        """What the dataset's bytes depend on: recorded in the manifest."""
        return dict(
            config_hash=self.base.config_hash(),
            version=__version__,
            n=self.base.n,
            seed=self.base.seed,
            shard_size=self.shard_size,
            batch=self.base.batch,
            tasks=dict(self.tasks),
            masks=self.masks,
            fov=self.base.fov_name,
            stage=self.base.pathology.stage,
            variability=self.base.variability,
        )


def _shard_range(text: str | None, count: int) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(x) for x in str(text).split(":"))
    except ValueError:
        raise ValueError(f"shards must look like 'a:b' (shard numbers), got {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"shards={text!r}: need 0 <= a < b")
    return a, min(b, count)


def parse(cfg) -> ExportJob:
    if cfg.action not in ("export", "verify"):
        raise ValueError(f"unknown export action {cfg.action!r}; valid: export, verify")
    out = Path(cfg.out)
    if cfg.action == "verify":
        if not (out / "manifest.json").is_file():
            raise OSError(f"no export to verify: {str(out / 'manifest.json')!r} does not exist")
    require_at_least(cfg, 1, "n", "shard_size", "batch")
    tasks = tuple((k, float(v)) for k, v in overrides_dict(cfg.tasks).items() if float(v) > 0)
    if not tasks or any(v < 0 for _, v in tasks):
        raise ValueError("tasks: give at least one task a positive weight")
    sim, params = sim_and_params(cfg.fov.name, cfg.size_px, cfg.fov_mm, overrides_dict(cfg.fov.params), overrides_dict(cfg.params))
    from ..io import check_writable

    check_writable(out)
    count = math.ceil(cfg.n / cfg.shard_size)
    base = GenerateJob(
        sim=sim, params=params, fov_name=cfg.fov.name, n=int(cfg.n), first_index=0, seed=int(cfg.seed), out=out,
        batch=int(min(cfg.batch, cfg.shard_size)), contact_sheet=False, masks=bool(cfg.masks), pathology=parse_pathology(cfg),
        variability=parse_variability(cfg),
    )
    return ExportJob(
        action=cfg.action, base=base, shard_size=int(cfg.shard_size), shard_range=_shard_range(cfg.shards, count),
        tasks=tasks, masks=bool(cfg.masks), llamafactory=bool(cfg.llamafactory), card=bool(cfg.card),
    )


# --- host side: one sample -> one row ------------------------------------------------------------


def sample_row(job: ExportJob, index: int, sample) -> dict | None:
    """The Parquet row of sample ``index`` (a host-side, unbatched ``Sample``); None if rejected."""
    from ..io import png_bytes
    from ..text import contradictions, measure_sample
    from ..text.measure import to_dict
    from ..text.tasks import conversation

    measured = measure_sample(sample, job.base.sim)
    rng = np.random.default_rng([job.base.seed, index, 0x5EC])
    names, weights = zip(*job.tasks)
    task = names[int(rng.choice(len(names), p=np.asarray(weights) / np.sum(weights)))]
    record = conversation(None, task, int(rng.integers(2**31)), measured)
    answer = record["messages"][1]["content"][0]["text"]
    # The export's own check-text: a record whose text contradicts the measurements is rejected.
    if contradictions(answer, measured, task=task):
        return None
    record_id = f"{index:07d}"
    intended = STAGES[int(sample.lesions.stage)]
    metadata = dict(
        index=index, seed=job.base.seed, config_hash=job.base.config_hash(), fov=job.base.fov_name,
        laterality="OD" if float(sample.anatomy.nasal_sign) > 0 else "OS", intended_stage=intended,
        measured=to_dict(measured), stats=host_statistics(sample, job.base.sim),
    )
    row = dict(
        id=record_id,
        images=[dict(bytes=png_bytes(sample.image), path=f"{record_id}.png")],
        messages=record["messages"],
        task=task,
        stage=measured.stage,
        label_dr=int(measured.label_dr),
        fov_mm=float(job.base.sim.field.fov_mm),
        index=index,
        metadata=json.dumps(metadata, sort_keys=True),
    )
    if job.masks:
        for name in MASK_COLUMNS:
            row[f"mask_{name}"] = png_bytes(sample.masks[name])
        for name, mask in sample.lesions.masks.items():
            row[f"mask_{name}"] = png_bytes(mask)
    return row


def mask_columns(job: ExportJob) -> list[str]:
    if not job.masks:
        return []
    from ..pathology import LESION_NAMES

    return [f"mask_{n}" for n in MASK_COLUMNS] + [f"mask_{n}" for n in LESION_NAMES]


# --- device side -----------------------------------------------------------------------------------


def batch_renderer(job: ExportJob):
    """(dispatch, fetch): ``dispatch(start)`` launches the fixed-size batch [start, start + batch) and
    returns at once; ``fetch`` waits for it and gives the host ``Sample``.

    With several local devices the batch is split over them (``jax.sharding``); on one device this is
    plain ``jit(vmap(simulate))``.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from ..simulate import sample_keys
    from .generate import batched_simulator

    batch = job.base.batch
    devices = jax.local_devices()
    run = batched_simulator(job.base.sim, job.base.pathology, job.base.variability)
    sharding = None
    if len(devices) > 1 and batch % len(devices) == 0:
        sharding = NamedSharding(Mesh(np.asarray(devices), ("batch",)), PartitionSpec("batch"))

    def dispatch(start: int):
        keys = sample_keys(job.base.seed, jnp.arange(start, start + batch))
        if sharding is not None:
            keys = jax.device_put(keys, sharding)
        return run(keys, job.base.params)

    return dispatch, jax.device_get


# --- orchestration ---------------------------------------------------------------------------------


def _sidecar(data_dir: Path, shard: shard_lib.Shard) -> Path:
    return data_dir / (shard.name + ".json")


def shard_is_complete(data_dir: Path, shard: shard_lib.Shard) -> bool:
    path, sidecar = data_dir / shard.name, _sidecar(data_dir, shard)
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        entry = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return entry.get("sha256") == shard_lib.sha256(path)


def write_manifest(job: ExportJob, plan: list[shard_lib.Shard]) -> dict:
    data_dir = job.out / "data"
    entries = []
    for shard in plan:
        sidecar = _sidecar(data_dir, shard)
        if sidecar.is_file():
            entries.append(json.loads(sidecar.read_text()))
    stages: dict[str, int] = {}
    for e in entries:
        for k, v in e["stages"].items():
            stages[k] = stages.get(k, 0) + v
    manifest = dict(
        job.identity(),
        shards=entries,
        shards_expected=len(plan),
        complete=len(entries) == len(plan),
        rows=sum(e["rows"] for e in entries),
        rejected=sum(e.get("rejected", 0) for e in entries),
        stages=dict(sorted(stages.items())),
    )
    shard_lib.write_json_atomic(job.out / "manifest.json", manifest)
    return manifest


def export(job: ExportJob) -> dict:
    from tqdm import tqdm

    from ..export.writer import dataset_info, llamafactory_view, produce_shard, rendered_batches

    enable_compilation_cache()
    data_dir = job.out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = shard_lib.plan(job.base.n, job.shard_size)
    existing = job.out / "manifest.json"
    if existing.is_file():
        previous = json.loads(existing.read_text())
        if previous.get("config_hash") != job.base.config_hash() or previous.get("n") != job.base.n:
            raise ValueError(f"{str(job.out)!r} holds an export of another config (hash {previous.get('config_hash')}); use a new out=")
    mine = plan[slice(*job.shard_range)] if job.shard_range else plan
    todo = [s for s in mine if not shard_is_complete(data_dir, s)]
    columns = mask_columns(job)
    dispatch, fetch = batch_renderer(job) if todo else (None, None)
    stream = rendered_batches(todo, job.base.batch, dispatch, lambda handle: _as_dict(fetch(handle)))
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(
        total=sum(s.stop - s.start for s in todo), unit="pair", desc=f"export {len(todo)}/{len(mine)} shards"
    ) as bar:
        for shard, group in itertools.groupby(stream, key=lambda item: item[0]):
            rejected = []

            def to_row(index, sample_dict, rejected=rejected):
                row = sample_row(job, index, _as_sample(sample_dict))
                if row is None:
                    rejected.append(index)
                return row

            entry = produce_shard(
                shard, ((start, count, host) for _, start, count, host in group), data_dir=data_dir, to_row=to_row,
                mask_columns=columns, pool=pool, progress=bar.update, keep=lambda row: row is not None,
            )
            entry["rejected"] = len(rejected)
            if job.llamafactory:
                llamafactory_view(data_dir, job.out / "llamafactory", shard.name)
            shard_lib.write_json_atomic(_sidecar(data_dir, shard), entry)
            write_manifest(job, plan)
    manifest = write_manifest(job, plan)
    if job.llamafactory:
        dataset_info(job.out / "llamafactory")
    if manifest["complete"] and job.card:
        from ..export.card import write_card

        write_card(job, manifest)
    return manifest


def verify(job: ExportJob) -> list[str]:
    """Names of shards that are missing or whose bytes differ from the manifest."""
    manifest = json.loads((job.out / "manifest.json").read_text())
    bad = []
    listed = {e["name"]: e for e in manifest["shards"]}
    for shard in shard_lib.plan(manifest["n"], manifest["shard_size"]):
        entry, path = listed.get(shard.name), job.out / "data" / shard.name
        if entry is None or not path.is_file():
            bad.append(f"{shard.name}: missing")
        elif shard_lib.sha256(path) != entry["sha256"]:
            bad.append(f"{shard.name}: sha256 mismatch (corrupt or truncated)")
    return bad


def run(job: ExportJob) -> None:
    import sys

    if job.action == "verify":
        bad = verify(job)
        for line in bad:
            print(line)
        print(f"verify: {len(bad)} bad shard(s) in {job.out}")
        if bad:
            sys.exit(1)
        return
    manifest = export(job)
    print(f"export: {manifest['rows']} pairs in {len(manifest['shards'])}/{manifest['shards_expected']} shards at {job.out}"
          f" (rejected {manifest['rejected']}); stages {manifest['stages']}")


# Host pytrees: the Sample dataclass survives jax.device_get; the writer slices plain dicts per sample.
def _as_dict(sample) -> dict:
    graph = sample.anatomy.graph
    return dict(
        image=sample.image, masks=sample.masks, nasal_sign=sample.anatomy.nasal_sign,
        graph=dict(start_mm=graph.start_mm, end_mm=graph.end_mm, valid=graph.valid, parent=graph.parent, radius_um=graph.radius_um),
        lesion_stage=sample.lesions.stage, lesion_masks=sample.lesions.masks,
        findings={f.name: getattr(sample.lesions.findings, f.name) for f in dataclasses.fields(sample.lesions.findings)},
    )


def _as_sample(d: dict):
    """The attributes ``sample_row`` and ``text.measure_sample`` read, from a per-sample dict."""
    from types import SimpleNamespace

    from ..pathology import Findings

    return SimpleNamespace(
        image=d["image"], masks=d["masks"],
        anatomy=SimpleNamespace(nasal_sign=d["nasal_sign"], graph=SimpleNamespace(**d["graph"])),
        lesions=SimpleNamespace(stage=d["lesion_stage"], masks=d["lesion_masks"], findings=Findings(**d["findings"])),
    )


def host_statistics(sample, sim) -> dict:
    """The sample's ``measure.image_statistics``, recomputed on the host in float64 from its pixels,
    masks and graph (exact device outputs): the device's float32 means may differ in the last bit
    between batch layouts, and the metadata must not (the same bytes on any device count)."""
    from ..measure import image_statistics
    from ..text.measure import host_graph

    stats = image_statistics(np.asarray(sample.image, np.float64), sample.masks, host_graph(sample.anatomy.graph), sim, xp=np)
    return {k: float(v) for k, v in stats.items()}
