"""The folder that ``svr generate`` writes: images, masks, per-sample JSON, a contact sheet."""

from __future__ import annotations

import dataclasses
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import config as config_lib
from ..batch import batched_simulator
from ..jobs import GenerateJob
from ..pathology import STAGES
from ..runtime import enable_compilation_cache


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


def write_folder(job: GenerateJob) -> None:
    """Render ``job`` into ``job.out``: images/, masks/, meta/<index>.json, generate.json, contact sheet."""
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
