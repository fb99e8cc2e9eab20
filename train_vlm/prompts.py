"""The prompt set of an export, so that evaluation asks in the words the model was trained on.

`svr export` writes `prompts.json` beside its dataset card: `{"tasks": {task: [prompt, ...]}}`, every
prompt each task draws from. An export without it (made with `card=false`) still holds its prompts in
its records, so they are collected from the shards' user turns instead. `train` copies the set into its
output folder, so a trained model carries the prompts of its data; `evaluate` looks there first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PROMPTS_FILE = "prompts.json"
GENERATION_TASK = "reasoning"  # answers that end with `Diagnosis: <X>`
SCORE_TASK = "dr_yes_no"  # answers that start with Yes / No: P(Yes) is the DR score
# Used only when no prompt set is found (a base model evaluated without naming an export).
FALLBACK_PROMPT = (
    "This is an en-face OCTA image of the superficial retinal vasculature. Describe the findings relevant to "
    "diabetic retinopathy, then end with a last line of the form 'Diagnosis: <X>', where X is one of: "
    "normal, mild NPDR, moderate NPDR, severe NPDR, PDR."
)
FALLBACK_SCORE_PROMPT = "Does this OCTA image show diabetic retinopathy? Answer Yes or No."


@dataclass(frozen=True)
class PromptSet:
    by_task: dict[str, tuple[str, ...]]
    source: str  # where the set was read from

    def as_json(self) -> dict:
        return {"tasks": {task: list(prompts) for task, prompts in sorted(self.by_task.items())}}


def prompts_from_shards(export_dir: Path, *, split: str = "train") -> dict[str, tuple[str, ...]]:
    """The distinct user prompts of each task in an export's shards (text columns only, no image decoded)."""
    import pyarrow.parquet as pq

    from .data import find_shards

    found: dict[str, dict[str, None]] = {}
    for shard in find_shards(export_dir, split=split):
        table = pq.read_table(shard, columns=["task", "messages"])
        for task, messages in zip(table.column("task").to_pylist(), table.column("messages").to_pylist()):
            for message in messages:
                if message["role"] == "user":
                    for part in message["content"]:
                        if part["type"] == "text" and part["text"]:
                            found.setdefault(task, {})[part["text"]] = None
    return {task: tuple(sorted(prompts)) for task, prompts in sorted(found.items())}


def find_prompt_set(source: str | Path | None) -> PromptSet | None:
    """The prompt set of `source`: a `prompts.json`, a folder holding one (an export or a trained model),
    or an export folder without one (read from its shards). None when `source` is None or holds none."""
    if source is None:
        return None
    path = Path(source)
    candidate = path if path.is_file() else path / PROMPTS_FILE
    if candidate.is_file():
        tasks = json.loads(candidate.read_text())["tasks"]
        return PromptSet({task: tuple(prompts) for task, prompts in tasks.items()}, str(candidate))
    if path.is_dir() and ((path / "data").is_dir() or any(path.glob("train-*.parquet"))):
        return PromptSet(prompts_from_shards(path), f"{path} (shards)")
    return None


def write_prompt_set(prompt_set: PromptSet, folder: str | Path) -> Path:
    path = Path(folder) / PROMPTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prompt_set.as_json(), indent=1, sort_keys=True) + "\n")
    return path


def generation_prompt(prompt_set: PromptSet) -> str:
    """The reasoning prompt that asks for the `Diagnosis:` line by name, else the first reasoning prompt.

    Naming the final line's form gives a base model the best chance of answering in it; a tuned model
    answers every reasoning prompt in that form anyway.
    """
    prompts = prompt_set.by_task.get(GENERATION_TASK)
    if not prompts:
        raise ValueError(f"{prompt_set.source} has no {GENERATION_TASK!r} prompts: {sorted(prompt_set.by_task)}")
    return next((p for p in prompts if "diagnosis:" in p.lower()), prompts[0])


def score_prompt(prompt_set: PromptSet) -> str | None:
    """The yes/no prompt that says `yes or no`, else the first yes/no prompt; None without yes/no prompts."""
    prompts = prompt_set.by_task.get(SCORE_TASK)
    if not prompts:
        return None
    return next((p for p in prompts if "yes or no" in p.lower()), prompts[0])
