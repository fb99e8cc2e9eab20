"""The export a browser is built from: checked first, then read shard by shard, never regenerated.

``open_export`` refuses anything that ``svr export verify`` would refuse (no manifest, a missing or
corrupt shard) and shards without the columns the browser shows, before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq


REQUIRED_COLUMNS = ("id", "images", "messages", "task", "stage", "fov_mm", "index", "metadata")


@dataclasses.dataclass(frozen=True)
class ExportSource:
    folder: Path
    manifest: dict
    shard_paths: tuple[Path, ...]
    mask_columns: tuple[str, ...]  # "mask_<name>" columns present in every shard

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])


def open_export(folder: Path | str) -> ExportSource:
    """The verified export at ``folder``; ValueError (one line, naming the problem) otherwise."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{str(folder)!r} is not an svr export folder (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
        names = [e["name"] for e in manifest["shards"]]
        int(manifest["n"]), int(manifest["shard_size"]), int(manifest["rows"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{str(manifest_path)!r} is not an svr export manifest") from None
    from ..export.pipeline import verify

    bad = verify(folder)
    if bad:
        raise ValueError(f"{str(folder)!r} fails `svr export verify`: {'; '.join(bad)}")
    paths = tuple(folder / "data" / name for name in names)
    masks = None
    for path in paths:
        columns = pq.read_schema(path).names
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"shard {path.name} lacks the column(s) {', '.join(missing)}: not an svr export shard")
        here = [c for c in columns if c.startswith("mask_")]
        masks = here if masks is None else [c for c in masks if c in here]
    return ExportSource(folder=folder, manifest=manifest, shard_paths=paths, mask_columns=tuple(masks or ()))


def iter_rows(source: ExportSource, *, batch_rows: int = 64) -> Iterator[dict]:
    """Every row of every shard in manifest order, as plain dicts (a batch of rows in memory at a time)."""
    columns = list(REQUIRED_COLUMNS) + list(source.mask_columns)
    for path in source.shard_paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
            yield from batch.to_pylist()
