"""``svr generate``: render samples to a folder (images, masks, per-sample JSON, contact sheet)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import config as config_lib
from ..param_bounds import check_params
from ..pathology import STAGES, PathologyConfig
from .schema import ParamsOverride, overrides_dict, require_at_least


@dataclasses.dataclass
class FovSchema:
    name: str = "3mm"
    params: Any = dataclasses.field(default_factory=ParamsOverride)


@dataclasses.dataclass
class StageMixtureSchema:
    """Probabilities of the stages for ``stage=mixed`` (normalised; any non-negative weights)."""

    normal: float = 0.4
    mild: float = 0.15
    moderate: float = 0.15
    severe: float = 0.15
    pdr: float = 0.15


@dataclasses.dataclass
class StageSchema:
    name: str = "normal"  # normal | mild | moderate | severe | pdr | mixed
    mixture: StageMixtureSchema = dataclasses.field(default_factory=StageMixtureSchema)


@dataclasses.dataclass
class GenerateSchema:
    n: int = 64
    first_index: int = 0
    seed: int = 0
    out: str = "out/generate"
    batch: int = 32
    size_px: Optional[int] = None
    fov_mm: Optional[float] = None
    contact_sheet: bool = True
    masks: bool = True
    variability: float = 0.3  # per-sample parameter spread around the preset (svr_jax.variability); 0: none
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    stage: StageSchema = dataclasses.field(default_factory=StageSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = GenerateSchema  # registered by the CLI as "generate_schema" (conf/*.yaml defaults)


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


def sim_and_params(fov_name: str, size_px, fov_mm, fov_params: dict, user_params: dict):
    """Preset -> static config and parameters with the preset's fitted values and user overrides."""
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
    config_lib.validate(sim)
    params = config_lib.default_params(sim)
    params = config_lib.params_from_dict(params, fov_params)
    params = config_lib.params_from_dict(params, user_params)
    check_params(params)
    return sim, params


def preset_params(fov_name: str) -> tuple[config_lib.SimConfig, config_lib.SimParams]:
    """The static config and the parameters `svr generate fov=<fov_name>` uses: the library defaults
    overlaid with the fitted values in ``conf/fov/<fov_name>.yaml``."""
    from omegaconf import OmegaConf

    from ..cli import conf_dir

    node = OmegaConf.load(conf_dir() / "fov" / f"{fov_name}.yaml")
    return sim_and_params(fov_name, None, None, overrides_dict(node.get("params") or {}), {})


def default_variability() -> float:
    """The per-sample parameter spread `svr generate`/`svr export` use unless told otherwise
    (``conf/generate.yaml``): the benchmarks simulate at it too."""
    from omegaconf import OmegaConf

    from ..cli import conf_dir

    return float(OmegaConf.load(conf_dir() / "generate.yaml").get("variability") or 0.0)


def parse_variability(cfg) -> float:
    """The per-sample parameter spread (shared with ``svr export``)."""
    value = float(cfg.get("variability") or 0.0)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"variability must be >= 0 and finite (0: every sample uses the preset), got {value}")
    return value


def parse_pathology(cfg) -> PathologyConfig:
    """The static disease configuration from the ``stage`` group (shared with ``svr export``)."""
    stage = cfg.get("stage") or {}
    mixture = stage.get("mixture") or {}
    return PathologyConfig(
        stage=str(stage.get("name", "normal")),
        mixture=tuple(float(mixture.get(name, default)) for name, default in zip(STAGES, PathologyConfig().mixture)),
    )


def parse(cfg) -> GenerateJob:
    require_at_least(cfg, 1, "n", "batch")
    require_at_least(cfg, 0, "first_index")
    sim, params = sim_and_params(cfg.fov.name, cfg.size_px, cfg.fov_mm, overrides_dict(cfg.fov.params), overrides_dict(cfg.params))
    pathology = parse_pathology(cfg)
    out = Path(cfg.out)
    from ..io import check_writable

    config_lib.validate_batch(sim, int(cfg.batch))
    check_writable(out)
    return GenerateJob(
        sim=sim,
        params=params,
        fov_name=cfg.fov.name,
        n=int(cfg.n),
        first_index=int(cfg.first_index),
        seed=int(cfg.seed),
        out=out,
        # Not shrunk to n: XLA rounds the last float bit differently for another batch size (a rare pixel
        # moves one grey level), so sample i is byte-identical only between runs of the same batch.
        batch=int(cfg.batch),
        contact_sheet=bool(cfg.contact_sheet),
        masks=bool(cfg.masks),
        pathology=pathology,
        variability=parse_variability(cfg),
    )


def enable_compilation_cache() -> None:
    """Persist compiled XLA programs across runs: a second `svr generate` starts in seconds."""
    import os

    import jax

    cache = os.environ.get("SVR_JAX_CACHE", str(Path.home() / ".cache" / "svr_jax" / "xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@functools.lru_cache(maxsize=8)
def batched_simulator(sim: config_lib.SimConfig, pathology: PathologyConfig = PathologyConfig(), variability: float = 0.0):
    """jit(vmap(simulate)) for a static config, disease stage and parameter spread; call with (keys [B], params).

    With ``variability`` > 0 each sample's parameters are drawn around ``params`` from its own key
    (``svr_jax.variability``), so sample i stays a pure function of (config, seed, i).
    Cached per (config, stage, spread) so that later jobs in one process (benchmarks, tests, notebooks)
    reuse the traced program instead of tracing the large graph again (seconds, even with the disk cache)."""
    import jax

    from ..simulate import simulate
    from ..variability import per_sample_params

    return jax.jit(jax.vmap(lambda key, params: simulate(key, per_sample_params(key, params, variability), sim, pathology), in_axes=(0, None)))


def lesion_metadata(lesions_np: dict) -> dict:
    """Stage labels, findings (each lesion named by type) and per-type counts of one sample."""
    from ..pathology import LESION_NAMES, Findings, findings_to_list

    findings = findings_to_list(Findings(**lesions_np["findings"]))
    counts = {name: sum(f["type"] == name for f in findings) for name in LESION_NAMES}
    return dict(
        stage=STAGES[int(lesions_np["stage"])],
        label_dr=bool(lesions_np["label_dr"]),
        lesion_types=[name for name in LESION_NAMES if counts[name]],
        lesion_counts=counts,
        findings=findings,
    )


def float32_value(value) -> float:
    """A device float32 as the shortest decimal that reads back as the same float32 (0.1, not
    0.10000000149011612): what the simulator computed, without digits it never had."""
    return float(str(np.float32(value)))


def sample_metadata(job: GenerateJob, index: int, sample_np: dict) -> dict:
    stats = {k: float32_value(v) for k, v in sample_np["stats"].items()}
    stats["segments"] = int(sample_np["stats"]["segments"])
    stats.update({k: float32_value(v) for k, v in sample_np["lesions"]["measures"].items()})
    return dict(
        index=index,
        seed=job.seed,
        config_hash=job.config_hash(),
        fov=job.fov_name,
        fov_mm=job.sim.field.fov_mm,
        size_px=job.sim.field.size_px,
        pixel_um=job.sim.field.pixel_um,
        laterality="OD" if sample_np["nasal_sign"] > 0 else "OS",
        faz_center_mm=[float32_value(x) for x in sample_np["faz_center_mm"]],
        measured=stats,
        **lesion_metadata(sample_np["lesions"]),
        params=config_lib.params_to_dict(job.params),
    )


GENERATE_OWNED = ("generate.json", "images", "masks", "meta", "contact_sheet.png")


def generate_identity(job: GenerateJob) -> dict:
    """What a sample's bytes depend on (not n or first_index: more indices of the same dataset may be
    added to a folder); recorded in ``generate.json`` before the first sample is written."""
    from .. import __version__

    return dict(version=__version__, config_hash=job.config_hash(), seed=job.seed, fov=job.fov_name,
                size_px=job.sim.field.size_px, fov_mm=job.sim.field.fov_mm, stage=job.pathology.stage,
                variability=job.variability, masks=job.masks)


def refuse_other_identity(out: Path, mine: dict) -> None:
    """ValueError naming the differing keys if ``out`` holds samples of another identity (or other files)."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    recorded, source = None, "generate.json"
    try:
        recorded = json.loads((out / "generate.json").read_text())
    except FileNotFoundError:
        metas = sorted((out / "meta").glob("*.json"))
        if metas:  # written before generate.json recorded its identity first: the samples say
            source = f"meta/{metas[0].name}"
            recorded = {k: v for k, v in json.loads(metas[0].read_text()).items() if k in ("config_hash", "seed", "fov")}
            mine = {k: mine[k] for k in recorded}
    except ValueError as error:
        raise ValueError(f"{str(out / 'generate.json')!r} is unreadable ({error}); use a new out=") from None
    if recorded is None:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in GENERATE_OWNED)
        if foreign:
            raise ValueError(f"{str(out)!r} is not empty and not a generate folder (holds {', '.join(foreign[:3])}); use a new out=")
        return
    keys = [k for k in mine if recorded.get(k) != mine[k]]
    if keys:
        shown = ", ".join(f"{k}: {recorded.get(k)!r} here vs {mine[k]!r} asked" for k in keys)
        raise ValueError(f"{str(out)!r} holds samples of another identity ({source} differs in {shown}); use a new out=")


def _fields(obj) -> dict:
    """Shallow dict of a dataclass's fields (``dataclasses.asdict`` would deep-copy device arrays)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def run(job: GenerateJob) -> None:
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from ..io import contact_sheet, label_png, png_bytes, write_bytes_atomic, write_json
    from ..simulate import MASK_NAMES, sample_keys

    out = job.out
    refuse_other_identity(out, generate_identity(job))  # before anything is written
    enable_compilation_cache()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "generate.json", generate_identity(job))  # first: an interrupted run is recognised too
    for sub in ("images", "meta") + (("masks",) if job.masks else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    render = batched_simulator(job.sim, job.pathology, job.variability)
    thumbnails: list[np.ndarray] = []
    captions: list[str] = []
    n_batches = math.ceil(job.n / job.batch)

    def write_one(index: int, s: dict) -> None:
        name = f"{index:06d}"
        write_bytes_atomic(out / "images" / f"{name}.png", png_bytes(s["image"]))
        if job.masks:
            for mask in MASK_NAMES:
                write_bytes_atomic(out / "masks" / f"{name}_{mask}.png", png_bytes(s["masks"][mask]))
            if job.pathology.active:  # lesion masks and the instance map (findings slot + 1 per pixel)
                for lesion, mask in s["lesions"]["masks"].items():
                    write_bytes_atomic(out / "masks" / f"{name}_{lesion}.png", png_bytes(mask))
                write_bytes_atomic(out / "masks" / f"{name}_lesion_instance.png", label_png(s["lesions"]["instance"]))
        write_json(out / "meta" / f"{name}.json", sample_metadata(job, index, s))

    # Encoding and writing run on a thread pool while the next batch renders.
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(total=job.n, unit="img", desc="generate") as bar:
        pending = []
        for b in range(n_batches):
            start = job.first_index + b * job.batch
            count = min(job.batch, job.first_index + job.n - start)
            # Fixed batch shape (no recompilation for the last, partial batch): pad with later indices.
            keys = sample_keys(job.seed, jnp.arange(start, start + job.batch))
            batch = render(keys, job.params)
            host = jax.device_get(
                dict(
                    image=batch.image,
                    masks=batch.masks,
                    stats=batch.stats,
                    nasal_sign=batch.anatomy.nasal_sign,
                    faz_center_mm=batch.anatomy.faz.center_mm,
                    lesions=_fields(batch.lesions) | dict(findings=_fields(batch.lesions.findings)),
                )
            )
            for future in pending:
                future.result()
            pending = []
            for i in range(count):
                s = jax.tree.map(lambda a, i=i: a[i], host)
                pending.append(pool.submit(write_one, start + i, s))
                if len(thumbnails) < 64:
                    thumbnails.append(s["image"])
                    captions.append(STAGES[int(s["lesions"]["stage"])])
            bar.update(count)
        for future in pending:
            future.result()
    if job.contact_sheet:
        contact_sheet(thumbnails, labels=captions if job.pathology.active else None).save(out / "contact_sheet.png")
    write_json(
        out / "generate.json",
        dict(generate_identity(job), n=job.n, first_index=job.first_index, seed=job.seed, fov=job.fov_name, config_hash=job.config_hash(),
             stage=job.pathology.stage, stage_mixture=dict(zip(STAGES, job.pathology.mixture)), variability=job.variability,
             sim=dataclasses.asdict(job.sim), params=config_lib.params_to_dict(job.params)),
    )
    print(f"wrote {job.n} samples to {out}" + (f" (contact sheet: {out / 'contact_sheet.png'})" if job.contact_sheet else ""))
