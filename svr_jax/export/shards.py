"""Shard layout, atomic Parquet writing, hashing and the manifest.

Sample i depends only on (config, seed, i), so shard k (samples [k·S, (k+1)·S)) can be produced by any
worker in any order. A shard is written under a temporary name and renamed when complete, so a shard file
that exists is whole; the manifest is rewritten after every shard and records each shard's sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..io import naming, tmp_path

SPLIT = "train"

# `datasets` reads these schema metadata to decode the `images` column into PIL images; written here
# by pyarrow so the simulator does not depend on `datasets`.
_HF_FEATURES_TEMPLATE = {
    "id": {"dtype": "string", "_type": "Value"},
    "images": {"feature": {"_type": "Image"}, "_type": "List"},
    "messages": {
        "feature": {
            "role": {"dtype": "string", "_type": "Value"},
            "content": {
                "feature": {"type": {"dtype": "string", "_type": "Value"}, "text": {"dtype": "string", "_type": "Value"}},
                "_type": "List",
            },
        },
        "_type": "List",
    },
    "task": {"dtype": "string", "_type": "Value"},
    "stage": {"dtype": "string", "_type": "Value"},
    "label_dr": {"dtype": "int64", "_type": "Value"},
    "fov_mm": {"dtype": "float64", "_type": "Value"},
    "index": {"dtype": "int64", "_type": "Value"},
    "metadata": {"dtype": "string", "_type": "Value"},
}


@dataclasses.dataclass(frozen=True)
class Shard:
    number: int
    count: int  # total number of shards
    start: int  # first sample index
    stop: int

    @property
    def name(self) -> str:
        return f"{SPLIT}-{self.number:05d}-of-{self.count:05d}.parquet"


def plan(n: int, shard_size: int) -> list[Shard]:
    count = -(-n // shard_size)
    return [Shard(k, count, k * shard_size, min(n, (k + 1) * shard_size)) for k in range(count)]


def schema(mask_columns: list[str]) -> pa.Schema:
    content = pa.list_(pa.struct([("type", pa.string()), ("text", pa.string())]))
    fields = [
        ("id", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", content)]))),
        ("task", pa.string()),
        ("stage", pa.string()),
        ("label_dr", pa.int64()),
        ("fov_mm", pa.float64()),
        ("index", pa.int64()),
        ("metadata", pa.string()),
    ] + [(c, pa.binary()) for c in mask_columns]
    features = dict(_HF_FEATURES_TEMPLATE, **{c: {"dtype": "binary", "_type": "Value"} for c in mask_columns})
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})


def write_table_atomic(rows: list[dict], path: Path, table_schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=table_schema)
    tmp = tmp_path(path)
    with naming(path):
        try:
            # Deterministic bytes: no timestamps in Parquet; fixed row-group size and compression.
            pq.write_table(table, tmp, compression="zstd", row_group_size=256, write_statistics=False)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
