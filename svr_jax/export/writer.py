"""Producing shards: render a shard's samples in fixed batches, turn each into a row, write atomically.

A shard's samples are always rendered in the same batches (aligned to the shard's first index, padded
to the fixed batch size), so a shard redone after a crash is byte-identical to the first attempt.
Host work (PNG encoding, measurement, text, Parquet writes) runs while the device renders the next
batch, which is always dispatched before the current one is fetched.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .shards import Shard, schema, sha256, write_table_atomic


def batches(shard: Shard, batch: int) -> Iterator[tuple[int, int]]:
    """(first index, number of real samples) of each fixed-size batch of a shard."""
    for start in range(shard.start, shard.stop, batch):
        yield start, min(batch, shard.stop - start)


def rendered_batches(
    shards: list[Shard], batch: int, dispatch: Callable[[int], Any], fetch: Callable[[Any], dict]
) -> Iterator[tuple[Shard, int, int, dict]]:
    """(shard, first index, real samples, host batch) over all batches of ``shards``, in order.

    ``dispatch(start)`` launches a batch on the device and returns at once (JAX dispatches
    asynchronously); the next batch is always launched before this one is fetched, so the device keeps
    rendering while the host converts rows and writes shards.
    """
    plan = [(shard, start, count) for shard in shards for start, count in batches(shard, batch)]
    ahead = dispatch(plan[0][1]) if plan else None
    for k, (shard, start, count) in enumerate(plan):
        current, ahead = ahead, (dispatch(plan[k + 1][1]) if k + 1 < len(plan) else None)
        yield shard, start, count, fetch(current)


def produce_shard(
    shard: Shard,
    rendered: Iterable[tuple[int, int, dict]],
    *,
    data_dir: Path,
    to_row: Callable[[int, dict], dict],
    mask_columns: list[str],
    pool: ThreadPoolExecutor,
    progress: Callable[[int], None] = lambda n: None,
    keep: Callable[[dict], bool] = lambda row: True,
) -> dict:
    """Convert and write one shard from its rendered batches ((first index, real samples, host batch));
    returns its manifest entry (rows that ``keep`` refuses are left out)."""
    futures = []
    for start, count, host in rendered:
        for i in range(count):
            one = {k: _take(v, i) for k, v in host.items()}
            futures.append(pool.submit(to_row, start + i, one))
        progress(count)
    rows = [row for row in (f.result() for f in futures) if keep(row)]
    path = data_dir / shard.name
    write_table_atomic(rows, path, schema(mask_columns))
    stages: dict[str, int] = {}
    for row in rows:
        stages[row["stage"]] = stages.get(row["stage"], 0) + 1
    return dict(name=shard.name, start=shard.start, stop=shard.stop, rows=len(rows), sha256=sha256(path), stages=stages)


def _take(tree, i):
    if isinstance(tree, dict):
        return {k: _take(v, i) for k, v in tree.items()}
    return np.asarray(tree)[i]


def llamafactory_view(data_dir: Path, view_dir: Path, shard: Shard) -> dict[str, str]:
    """JSONL + image folder for LLaMA-Factory (sharegpt format) from one Parquet shard; returns
    {path relative to the export folder: sha256} of every file written (recorded in the sidecar).

    Files of the shard's index range left from an earlier attempt are removed first, so the view holds
    exactly what the shard holds. Refuses a record whose image count differs from its ``<image>``
    placeholders, as LLaMA-Factory does.
    """
    import hashlib

    import pyarrow.parquet as pq

    from ..io import write_bytes_atomic

    table = pq.read_table(data_dir / shard.name, columns=["id", "images", "messages"])
    # One image folder per shard: a 100,000-pair export would otherwise put 100,000 files in one folder,
    # which shared cluster file systems (Lustre, NFS) list and open slowly.
    folder = f"images/{shard.name.removesuffix('.parquet')}"
    (view_dir / folder).mkdir(parents=True, exist_ok=True)
    (view_dir / "data").mkdir(parents=True, exist_ok=True)
    for stale in shard_view_images(view_dir, shard):
        stale.unlink()
    prefix = view_dir.name
    files: dict[str, str] = {}
    lines = []
    for row in table.to_pylist():
        paths = []
        for j, image in enumerate(row["images"]):
            rel = f"{folder}/{row['id']}_{j}.png"
            write_bytes_atomic(view_dir / rel, image["bytes"])
            files[f"{prefix}/{rel}"] = hashlib.sha256(image["bytes"]).hexdigest()
            paths.append(rel)
        messages = []
        for message in row["messages"]:
            text = "".join("<image>" if part["type"] == "image" else part["text"] for part in message["content"])
            messages.append(dict(role=message["role"], content=text))
        placeholders = sum(m["content"].count("<image>") for m in messages)
        if placeholders != len(paths):
            raise ValueError(f"record {row['id']}: {len(paths)} images but {placeholders} <image> placeholders")
        lines.append(json.dumps(dict(messages=messages, images=paths), ensure_ascii=False, allow_nan=False))
    name = "data/" + shard.name.replace(".parquet", ".jsonl")
    text = ("\n".join(lines) + "\n").encode()
    write_bytes_atomic(view_dir / name, text)
    files[f"{prefix}/{name}"] = hashlib.sha256(text).hexdigest()
    return dict(sorted(files.items()))


def shard_view_images(view_dir: Path, shard: Shard) -> list[Path]:
    """The view's image files (and temporaries) of ``shard``: its own folder, ``images/<shard>/``."""
    return sorted((view_dir / "images" / shard.name.removesuffix(".parquet")).glob("*.png*"))


def dataset_info(view_dir: Path, name: str = "svr_octa") -> Path:
    info = {
        name: {
            "file_name": "data",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    }
    from ..io import write_bytes_atomic

    path = view_dir / "dataset_info.json"
    # Every multirun job writes it when done: atomically, so a reader never sees half of it.
    write_bytes_atomic(path, (json.dumps(info, indent=1) + "\n").encode())
    return path
