"""``svr check-text``: parse every claim of the texts back and count contradictions with the measurements.

Two sources: simulated samples (``n``, ``stage``, ``seed``, field settings): each is measured and every
task's text is generated and checked; or an exported folder (``dir=``): every record of its ``*.jsonl``
/ ``*.parquet`` files whose metadata carries ``measured`` (``svr_jax.text.measure.to_dict``) is checked.
Prints the number of texts, contradictions and final-line parse failures; exits 1 if any.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

from .generate import parse_pathology
from .schema import FovSchema, ParamsOverride, StageSchema, overrides_dict, require_at_least


@dataclasses.dataclass
class CheckTextSchema:
    n: int = 200
    stage: StageSchema = dataclasses.field(default_factory=lambda: StageSchema(name="mixed"))
    seed: int = 0
    first_index: int = 0
    batch: int = 32
    size_px: Optional[int] = None
    fov_mm: Optional[float] = None
    architecture: Optional[str] = None  # vessel trees: branching | colonisation (opt-in, presets not fitted to it)
    dir: Optional[str] = None  # an exported folder instead of simulating
    show: int = 5  # contradictions printed in full
    fov: FovSchema = dataclasses.field(default_factory=FovSchema)
    params: Any = dataclasses.field(default_factory=ParamsOverride)


SCHEMA = CheckTextSchema  # registered by the CLI as "check_text_schema" (conf/*.yaml defaults)


@dataclasses.dataclass(frozen=True)
class CheckTextJob:
    sim: Any
    params: Any
    stage: Any  # pathology.PathologyConfig (static)
    n: int
    seed: int
    first_index: int
    batch: int
    folder: Optional[Path]
    show: int


def parse(cfg) -> CheckTextJob:
    from ..presets import sim_and_params

    require_at_least(cfg, 1, "n", "batch")
    pathology = parse_pathology(cfg)
    folder = None
    if cfg.dir is not None:
        folder = Path(cfg.dir)
        if not folder.is_dir():
            raise OSError(f"dir {str(folder)!r} is not a directory")
        if not any(folder.rglob("*.jsonl")) and not any(folder.rglob("*.parquet")):
            raise OSError(f"dir {str(folder)!r} holds no *.jsonl or *.parquet records")
    sim, params = sim_and_params(cfg.fov.name, cfg.size_px, cfg.fov_mm, overrides_dict(cfg.fov.params), overrides_dict(cfg.params),
                                 architecture=cfg.architecture)
    return CheckTextJob(sim=sim, params=params, stage=pathology, n=int(cfg.n), seed=int(cfg.seed),
                        first_index=int(cfg.first_index), batch=int(cfg.batch), folder=folder, show=int(cfg.show))


def _folder_texts(folder: Path):
    """(task, text, measured) of every exported record that carries its measurements."""
    from ..text.measure import from_dict

    rows = []
    for path in sorted(folder.rglob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for path in sorted(folder.rglob("*.parquet")):
        import pyarrow.parquet as pq

        rows += pq.read_table(path, columns=["messages", "task", "metadata"]).to_pylist()
    for row in rows:
        meta = row.get("metadata") or {}
        meta = json.loads(meta) if isinstance(meta, str) else meta
        if "measured" not in meta:
            continue
        answer = row["messages"][-1]["content"]
        text = answer if isinstance(answer, str) else "".join(p.get("text") or "" for p in answer)
        yield row.get("task"), text, from_dict(meta["measured"])


def _simulated_texts(job: CheckTextJob):
    from ..simulated import simulated
    from ..text.tasks import TASKS, answer

    for index, m, _, _ in simulated(job.sim, job.params, stage=job.stage, seed=job.seed, n=job.n,
                                    first_index=job.first_index, batch=job.batch):
        for k, task in enumerate(TASKS):
            yield task, answer(task, job.seed * 1_000_003 + index * len(TASKS) + k, m), m


def check(items, show: int = 5) -> dict:
    """Counts over (task, text, measured) items; prints the first ``show`` contradictions."""
    from ..text.check import contradictions, final_line_parses

    n_texts = n_bad_texts = n_contradictions = n_reasoning = n_parsed = 0
    for task, text, m in items:
        n_texts += 1
        bad = contradictions(text, m, task=task)
        if task == "reasoning":
            n_reasoning += 1
            if final_line_parses(text):
                n_parsed += 1
            else:
                bad = bad + ["final line is not 'Diagnosis: <X>'"]
        if bad:
            n_bad_texts += 1
            n_contradictions += len(bad)
            if n_bad_texts <= show:
                print(f"--- {task}: {len(bad)} contradiction(s)\n" + "\n".join(f"  {b}" for b in bad), file=sys.stderr)
    return dict(texts=n_texts, texts_with_contradictions=n_bad_texts, contradictions=n_contradictions,
                reasoning_texts=n_reasoning, final_line_parse_rate=(n_parsed / n_reasoning) if n_reasoning else None)


def run(job: CheckTextJob) -> None:
    from ..runtime import enable_compilation_cache

    if job.folder is not None:
        result = check(_folder_texts(job.folder), job.show)
    else:
        enable_compilation_cache()
        result = check(_simulated_texts(job), job.show)
    print(json.dumps(result))
    if result["texts"] == 0:
        print("svr check-text: error: no texts with measurements found", file=sys.stderr)
        raise SystemExit(2)
    if result["contradictions"]:
        raise SystemExit(1)
