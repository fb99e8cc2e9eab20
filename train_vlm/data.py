"""Reading the simulator's exported Parquet shards as a Hugging Face dataset, images decoded.

The export (`<out>/data/train-00000-of-00004.parquet`, ...) holds one record per row:

- `id` (str), `images` (a list of one image: the `datasets` Image struct {bytes, path}),
- `messages`: TRL's vision conversation form — a user turn whose content is one image part then one text
  part, and an assistant turn with one text part,
- `task` (reasoning, dr_yes_no, stage, count_ma, grounding, caption), `stage` (normal, mild, moderate,
  severe, pdr), `label_dr` (0/1), `fov_mm` (3.0 or 6.0), `metadata` (a JSON string),
- possibly more columns (masks as PNG bytes), which are kept but never used.

These records go into TRL's `SFTTrainer` unchanged: its vision collator reads `images` and `messages`.
This package never imports the simulator; the shards are the whole interface.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import datasets
import pyarrow.compute as pc

EXPORT_TASKS: tuple[str, ...] = ("reasoning", "dr_yes_no", "stage", "count_ma", "grounding", "caption")
STAGES: tuple[str, ...] = ("normal", "mild", "moderate", "severe", "pdr")
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "images", "messages", "task", "stage", "label_dr", "fov_mm", "metadata")


def find_shards(source: str | Path | Sequence[str | Path], *, split: str = "train") -> list[str]:
    """Parquet files for `split` from an export folder, a single file, a glob, or a list of those.

    An export folder is searched as `<folder>/data/<split>-*.parquet`, then `<folder>/<split>-*.parquet`.
    """
    if isinstance(source, (list, tuple)):
        return sorted({path for item in source for path in find_shards(item, split=split)})
    source = Path(source)
    if source.is_file():
        return [str(source)]
    if source.is_dir():
        for pattern in (f"data/{split}-*.parquet", f"{split}-*.parquet"):
            shards = sorted(glob.glob(str(source / pattern)))
            if shards:
                return shards
        raise FileNotFoundError(
            f"No Parquet shards for split {split!r} in {source}: expected data/{split}-*.parquet "
            f"(e.g. data/{split}-00000-of-00004.parquet)"
        )
    shards = sorted(glob.glob(str(source)))
    if not shards:
        raise FileNotFoundError(f"{source} is not a file, folder or glob that matches any Parquet shard")
    return shards


def load_export(
    source: str | Path | Sequence[str | Path],
    *,
    split: str = "train",
    tasks: Sequence[str] | None = None,
    max_records: int | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """The export's records as a `datasets.Dataset` whose `images` decode to PIL images.

    Args:
        source: export folder, Parquet file, glob, or a list of those.
        split: which shards of an export folder to read (`train-*`, `test-*`, ...).
        tasks: keep only these tasks (e.g. `["reasoning", "dr_yes_no"]`); None keeps all.
        max_records: keep the first N records after task filtering (quick runs).
        cache_dir: the `datasets` cache for the Arrow conversion; defaults to `datasets`' own.
    """
    shards = find_shards(source, split=split)
    dataset = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=cache_dir)
    missing = [column for column in REQUIRED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{shards[0]} lacks columns {missing}; an export record needs {list(REQUIRED_COLUMNS)} "
            f"(it has {dataset.column_names})"
        )
    # A writer that used plain pyarrow stores the image struct without `datasets` metadata; casting makes it
    # decode to PIL either way (a no-op when the feature is already Image).
    if not _is_image_list(dataset.features["images"]):
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    if tasks is not None:
        unknown = sorted(set(tasks) - set(EXPORT_TASKS))
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown}; valid tasks are {list(EXPORT_TASKS)}")
        wanted = set(tasks)
        dataset = dataset.filter(lambda task: task in wanted, input_columns="task")
    if max_records is not None:
        dataset = dataset.select(range(min(max_records, len(dataset))))
    check_records(dataset)
    return dataset


def _is_image_list(feature) -> bool:
    inner = getattr(feature, "feature", None)
    return isinstance(inner, datasets.Image)


def check_records(dataset: datasets.Dataset) -> None:
    """Refuse records whose image count differs from their image placeholders (as LLaMA-Factory does).

    Reads only the Arrow columns, so no image is decoded.
    """
    table = dataset.with_format("arrow")[:]
    image_counts = pc.list_value_length(table.column("images")).to_pylist()
    for row, (record_id, messages, n_images) in enumerate(
        zip(table.column("id").to_pylist(), table.column("messages").to_pylist(), image_counts)
    ):
        n_parts = sum(
            part["type"] == "image" for message in messages for part in message["content"] if part is not None
        )
        if n_parts != n_images:
            raise ValueError(
                f"Record {record_id!r} (row {row}) has {n_images} image(s) but {n_parts} image part(s) in its "
                "messages; each image needs exactly one {'type': 'image'} part"
            )
        roles = [message["role"] for message in messages]
        if "assistant" not in roles:
            raise ValueError(f"Record {record_id!r} (row {row}) has no assistant turn (roles: {roles})")
