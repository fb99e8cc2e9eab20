"""The export pipeline behind ``svr export``: image + reasoning pairs as Parquet shards, resumable,
reproducible, verifiable.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io import write_json
from ..jobs import GenerateJob
from ..pathology import STAGES
from ..runtime import enable_compilation_cache
from ..simulate import MASK_NAMES
from . import shards as shard_lib

# 2: identity in every sidecar, LLaMA-Factory files hashed, manifest lists the sidecars' and card's sha256.
SCHEMA_VERSION = 2
IDENTITY_KEYS = ("schema_version", "version", "config_hash", "n", "seed", "shard_size", "batch", "tasks", "masks", "fov",
                 "size_px", "fov_mm", "stage", "variability", "llamafactory", "card")


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
    browse: bool = False

    @property
    def out(self) -> Path:
        return self.base.out

    def identity(self) -> dict:
        """Everything the folder's bytes depend on: recorded in the manifest and in every shard's sidecar;
        a folder recording another identity is refused (``refuse_other_identity``)."""
        sim = self.base.sim
        identity = dict(
            schema_version=SCHEMA_VERSION,
            version=__version__,
            config_hash=self.base.config_hash(),  # static config, parameters, seed, stage mixture, spread
            n=self.base.n,
            seed=self.base.seed,
            shard_size=self.shard_size,
            batch=self.base.batch,
            tasks=dict(self.tasks),
            masks=self.masks,
            fov=self.base.fov_name,
            size_px=sim.field.size_px,
            fov_mm=sim.field.fov_mm,
            stage=self.base.pathology.stage,
            variability=self.base.variability,
            llamafactory=self.llamafactory,
            card=self.card,
        )
        assert tuple(identity) == IDENTITY_KEYS
        return identity


# --- host side: one sample -> one row ------------------------------------------------------------


def sample_row(job: ExportJob, index: int, sample) -> dict | None:
    """The Parquet row of sample ``index`` (a host-side, unbatched ``Sample``); None if rejected."""
    from ..io import png_bytes
    from ..simulated import measure_sample
    from ..text import contradictions
    from ..text.measure import to_dict
    from ..text.tasks import conversation

    bad = non_finite(sample)
    if bad:  # last line of defence (parameters are validated before anything runs)
        _log_rejected(index, f"non-finite {bad}")
        return None
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
    try:
        metadata_json = json.dumps(metadata, sort_keys=True, allow_nan=False)  # NaN / Infinity are not JSON
    except ValueError:
        _log_rejected(index, "non-finite measurement")
        return None
    row = dict(
        id=record_id,
        images=[dict(bytes=png_bytes(sample.image), path=f"{record_id}.png")],
        messages=record["messages"],
        task=task,
        stage=measured.stage,
        label_dr=int(measured.label_dr),
        fov_mm=float(job.base.sim.field.fov_mm),
        index=index,
        metadata=metadata_json,
    )
    if job.masks:
        for name in MASK_NAMES:
            row[f"mask_{name}"] = png_bytes(sample.masks[name])
        for name, mask in sample.lesions.masks.items():
            row[f"mask_{name}"] = png_bytes(mask)
    return row


def non_finite(sample) -> str | None:
    """What of a host sample is NaN or infinite ("image", "finding ..."), or None."""
    if not np.isfinite(np.asarray(sample.image)).all():
        return "image"
    findings = sample.lesions.findings
    for field in dataclasses.fields(findings):
        value = np.asarray(getattr(findings, field.name))
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"finding {field.name}"
    return None


def _log_rejected(index: int, why: str) -> None:
    import sys

    print(f"export: sample {index} rejected: {why}", file=sys.stderr)


def mask_columns(job: ExportJob) -> list[str]:
    if not job.masks:
        return []
    from ..pathology import LESION_NAMES

    return [f"mask_{n}" for n in MASK_NAMES] + [f"mask_{n}" for n in LESION_NAMES]


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

    from ..batch import batched_simulator
    from ..simulate import sample_keys

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
#
# Every file of an export is accounted for: a shard's sidecar ``data/<shard>.json`` records its identity,
# its Parquet sha256 and the sha256 of every LLaMA-Factory file made from it; ``manifest.json`` is
# rebuilt from the sidecars (with each sidecar's sha256) plus the folder-level files (dataset_info.json,
# the card). ``verify`` re-hashes all of it and names what is wrong; a re-export repairs exactly that.

# What an export folder may hold: its files, the browser site (svr browse) and Hydra's run folders
# (svr_jax/conf/export.yaml puts them under out/, where a multirun creates them before any job runs).
OWNED = ("manifest.json", "README.md", "prompts.json", "data", "llamafactory", "card", "browser", ".multirun", ".hydra_run")


def _sidecar(data_dir: Path, shard: shard_lib.Shard) -> Path:
    return data_dir / (shard.name + ".json")


def read_json(path: Path) -> tuple[Any, str | None]:
    """(object, None), or (None, why) when ``path`` is missing or is not valid JSON."""
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text()), None
    except (ValueError, UnicodeDecodeError) as error:
        return None, f"unreadable ({' '.join(str(error).split())})"


def identity_of(record: dict) -> dict:
    """The identity recorded in a manifest (top-level keys) or a sidecar (``identity``)."""
    if "identity" in record:
        return dict(record["identity"])
    return {k: record[k] for k in IDENTITY_KEYS if k in record}


def differing(mine: dict, theirs: dict) -> list[str]:
    return [k for k in mine if json.dumps(theirs.get(k), sort_keys=True) != json.dumps(mine[k], sort_keys=True)]


def recorded_identities(out: Path) -> list[tuple[str, dict]]:
    """(source, identity) of the manifest and every readable sidecar in ``out``."""
    found = []
    manifest, _ = read_json(out / "manifest.json")
    if isinstance(manifest, dict):
        found.append(("manifest.json", identity_of(manifest)))
    for sidecar in sorted((out / "data").glob("*.parquet.json")):
        entry, _ = read_json(sidecar)
        if isinstance(entry, dict):
            found.append((f"data/{sidecar.name}", identity_of(entry)))
    return found


def refuse_other_identity(out: Path, mine: dict) -> None:
    """ValueError (one line naming the differing keys) if ``out`` holds anything but an export of ``mine``."""
    if not out.is_dir():
        return
    for source, theirs in recorded_identities(out):
        keys = differing(mine, theirs)
        if keys:
            shown = ", ".join(f"{k}: {_short(theirs.get(k))} here vs {_short(mine[k])} asked" for k in keys)
            raise ValueError(f"{str(out)!r} holds an export of another identity ({source} differs in {shown}); "
                             "use a new out= or the folder's settings")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWNED)
    if foreign and not (out / "manifest.json").exists() and not list((out / "data").glob("*.parquet.json")):
        raise ValueError(f"{str(out)!r} is not empty and not an export folder (holds {', '.join(foreign[:3])}); use a new out=")


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def shard_state(job: ExportJob, shard: shard_lib.Shard) -> str:
    """"complete", "view" (Parquet and sidecar fine, a LLaMA-Factory file missing or changed) or "redo"."""
    data_dir = job.out / "data"
    path = data_dir / shard.name
    entry, _ = read_json(_sidecar(data_dir, shard))
    if not (isinstance(entry, dict) and path.is_file()) or differing(job.identity(), identity_of(entry)):
        return "redo"
    if entry.get("sha256") != shard_lib.sha256(path):
        return "redo"
    files = entry.get("files", {})
    if job.llamafactory and not files:
        return "view"
    return "complete" if all(_file_ok(job.out, rel, digest) for rel, digest in files.items()) else "view"


def _file_ok(out: Path, rel: str, digest: str) -> bool:
    return (out / rel).is_file() and shard_lib.sha256(out / rel) == digest


def manifest_from_sidecars(out: Path, identity: dict, plan: list[shard_lib.Shard], files: dict) -> dict:
    """The manifest a folder's sidecars imply (each entry without its file list, with the sidecar's sha256)."""
    entries = []
    for shard in plan:
        sidecar = _sidecar(out / "data", shard)
        entry, _ = read_json(sidecar)
        if isinstance(entry, dict) and not differing(identity, identity_of(entry)):
            listed = {k: v for k, v in entry.items() if k not in ("identity", "files")}
            entries.append(dict(listed, sidecar_sha256=shard_lib.sha256(sidecar)))
    stages: dict[str, int] = {}
    for e in entries:
        for k, v in e["stages"].items():
            stages[k] = stages.get(k, 0) + v
    return dict(
        identity,
        shards=entries,
        shards_expected=len(plan),
        complete=len(entries) == len(plan),
        rows=sum(e["rows"] for e in entries),
        rejected=sum(e.get("rejected", 0) for e in entries),
        stages=dict(sorted(stages.items())),
        files=dict(sorted(files.items())),
    )


def write_manifest(job: ExportJob, plan: list[shard_lib.Shard], files: dict | None = None) -> dict:
    """Rebuild ``manifest.json`` from the sidecars present now; ``files`` (folder-level files and their
    sha256) default to those of the readable manifest of the same identity (kept while shards are produced).

    Multirun jobs finishing shards at the same moment rebuild it concurrently. Each writes under its own
    temporary name and renames (a reader sees one whole file), then reads the sidecars again and rewrites
    while they changed. So the last rename holds every sidecar written before it, with no lock: a shared
    file system needs only an atomic rename. Checked by ``tests/sim/test_export_race.py``.
    """
    if files is None:
        previous, _ = read_json(job.out / "manifest.json")
        same = isinstance(previous, dict) and not differing(job.identity(), identity_of(previous))
        files = previous.get("files", {}) if same else {}
    while True:
        manifest = manifest_from_sidecars(job.out, job.identity(), plan, files)
        write_json(job.out / "manifest.json", manifest)
        if manifest_from_sidecars(job.out, job.identity(), plan, files) == manifest:
            return manifest
    return manifest


def unexpected_files(out: Path, plan: list[shard_lib.Shard], recorded: set[str]) -> list[str]:
    """Paths (relative to ``out``) under data/, llamafactory/ and card/ that no sidecar or manifest records."""
    expected = {f"data/{s.name}" for s in plan} | {f"data/{s.name}.json" for s in plan} | recorded | {"manifest.json"}
    found = []
    for folder in ("data", "llamafactory", "card"):
        for path in sorted((out / folder).rglob("*")):
            rel = path.relative_to(out).as_posix()
            if path.is_file() and rel not in expected:
                found.append(rel)
    return found


def _recorded_view_files(out: Path, plan: list[shard_lib.Shard]) -> set[str]:
    recorded = set()
    for shard in plan:
        entry, _ = read_json(_sidecar(out / "data", shard))
        if isinstance(entry, dict):
            recorded |= set(entry.get("files", {}))
    return recorded


def _hashes(out: Path, paths: list[Path]) -> dict:
    return {p.relative_to(out).as_posix(): shard_lib.sha256(p) for p in paths}


def export(job: ExportJob) -> dict:
    import sys

    from tqdm import tqdm

    from ..io import naming, remove_stale_tmp
    from .writer import dataset_info, llamafactory_view, produce_shard, rendered_batches

    refuse_other_identity(job.out, job.identity())  # before anything is written
    enable_compilation_cache()
    data_dir = job.out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for folder in (job.out, data_dir, job.out / "llamafactory" / "data"):
        remove_stale_tmp(folder)
    plan = shard_lib.plan(job.base.n, job.shard_size)
    _, problem = read_json(job.out / "manifest.json")
    if problem == "missing" and list(data_dir.glob("*.parquet.json")) or problem not in (None, "missing"):
        print(f"export: {str(job.out / 'manifest.json')!r} {problem}: rebuilt from the shard sidecars", file=sys.stderr)
    mine = plan[slice(*job.shard_range)] if job.shard_range else plan
    states = {s.name: shard_state(job, s) for s in mine}
    todo = [s for s in mine if states[s.name] == "redo"]
    for shard in mine:
        if states[shard.name] == "view" and job.llamafactory:  # the shard is fine: rebuild its view only
            entry, _ = read_json(_sidecar(data_dir, shard))
            entry["files"] = llamafactory_view(data_dir, job.out / "llamafactory", shard)
            write_json(_sidecar(data_dir, shard), entry)
            print(f"export: rebuilt the LLaMA-Factory view of {shard.name}", file=sys.stderr)
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
            entry["identity"] = job.identity()
            entry["files"] = llamafactory_view(data_dir, job.out / "llamafactory", shard) if job.llamafactory else {}
            write_json(_sidecar(data_dir, shard), entry)
            write_manifest(job, plan)
    manifest = write_manifest(job, plan)
    if manifest["complete"]:
        files = dict(manifest["files"])
        stale = todo or not files or not all(_file_ok(job.out, rel, d) for rel, d in files.items())
        if stale:
            files = {}
            if job.llamafactory:
                files |= _hashes(job.out, [dataset_info(job.out / "llamafactory")])
            if job.card and manifest["rows"]:  # no card of an empty dataset (every sample rejected)
                from .card import write_card

                with naming(job.out / "card"):
                    files |= _hashes(job.out, write_card(job, manifest))
            manifest = write_manifest(job, plan, files)
    if job.shard_range is None:  # a multirun worker leaves the other workers' files alone
        recorded = _recorded_view_files(job.out, plan) | set(manifest["files"])
        for rel in unexpected_files(job.out, plan, recorded):
            (job.out / rel).unlink()
            print(f"export: removed {rel} (not part of this export)", file=sys.stderr)
    if manifest["complete"] and job.browse:
        from ..browse import build

        build(job.out)
    return manifest


def verify(out: Path) -> list[str]:
    """Every problem of the export folder ``out``, one line each (empty: every file is as recorded)."""
    bad = []
    manifest, problem = read_json(out / "manifest.json")
    if problem:
        bad.append(f"manifest.json: {problem}")
    sources = recorded_identities(out)
    if not sources:
        return bad + [f"{str(out)!r}: no manifest and no shard sidecars (not an export folder)"]
    identity = identity_of(manifest) if isinstance(manifest, dict) else sources[0][1]
    if any(k not in identity for k in IDENTITY_KEYS):
        return bad + [f"{sources[0][0]}: written by an older svr export (no identity of schema_version {SCHEMA_VERSION}); export again into a new out="]
    plan = shard_lib.plan(identity["n"], identity["shard_size"])
    for shard in plan:
        data, sidecar = f"data/{shard.name}", f"data/{shard.name}.json"
        entry, why = read_json(out / sidecar)
        if not isinstance(entry, dict):
            bad.append(f"{sidecar}: {why or 'not a JSON object'}")
            if not (out / data).is_file():
                bad.append(f"{data}: missing")
            continue
        keys = differing(identity, identity_of(entry))
        if keys:
            bad.append(f"{sidecar}: another identity (differs in {', '.join(keys)})")
            continue
        if not (out / data).is_file():
            bad.append(f"{data}: missing")
        elif shard_lib.sha256(out / data) != entry.get("sha256"):
            bad.append(f"{data}: sha256 mismatch (corrupt or truncated)")
        if identity.get("llamafactory") and not entry.get("files"):
            bad.append(f"{sidecar}: records no LLaMA-Factory files")
        for rel, digest in entry.get("files", {}).items():
            if not (out / rel).is_file():
                bad.append(f"{rel}: missing")
            elif shard_lib.sha256(out / rel) != digest:
                bad.append(f"{rel}: sha256 mismatch (corrupt or truncated)")
    files = manifest.get("files", {}) if isinstance(manifest, dict) else {}
    if isinstance(manifest, dict):
        rebuilt = manifest_from_sidecars(out, identity, plan, files)
        if json.dumps(rebuilt, sort_keys=True) != json.dumps(manifest, sort_keys=True):
            keys = sorted(k for k in set(rebuilt) | set(manifest) if json.dumps(rebuilt.get(k), sort_keys=True) != json.dumps(manifest.get(k), sort_keys=True))
            bad.append(f"manifest.json: does not match the shard sidecars (differs in {', '.join(keys)})")
        if manifest.get("complete"):
            wanted = (["llamafactory/dataset_info.json"] if identity.get("llamafactory") else []) + (
                ["README.md"] if identity.get("card") and manifest.get("rows") else [])
            bad += [f"{rel}: not recorded in manifest.json" for rel in wanted if rel not in files]
    for rel, digest in files.items():
        if not (out / rel).is_file():
            bad.append(f"{rel}: missing")
        elif shard_lib.sha256(out / rel) != digest:
            bad.append(f"{rel}: sha256 mismatch (corrupt or truncated)")
    recorded = _recorded_view_files(out, plan) | set(files)
    bad += [f"{rel}: unexpected file (not part of this export)" for rel in unexpected_files(out, plan, recorded)]
    return bad


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
    """The attributes ``sample_row`` and ``simulated.measure_sample`` read, from a per-sample dict."""
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
    from ..simulated import host_graph

    stats = image_statistics(np.asarray(sample.image, np.float64), sample.masks, host_graph(sample.anatomy.graph), sim, xp=np)
    return {k: float(v) for k, v in stats.items()}
