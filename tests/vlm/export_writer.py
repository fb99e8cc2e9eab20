"""Export folders for tests, written from the committed fixture of a real `svr export` (never hand-written text).

`fixtures/svr_export/` holds what `svr export` wrote for a small config (`scripts/make_vlm_fixture.py`;
`tests/sim/test_vlm_fixture.py` checks that it still does): every record's text columns, the shards'
Arrow schema with its `datasets` metadata, and the prompt set. Only the pixels here are made up (random
images, blank masks), so records keep the real prompts, answers and columns. Two flavours, because a
reader must cope with both: the exporter's schema (with the Image feature in the metadata) and plain
pyarrow (the same struct {bytes, path}, no metadata).
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "svr_export"


@functools.cache
def _records() -> tuple[dict, ...]:
    lines = (FIXTURE_DIR / "records.jsonl").read_text().splitlines()
    return tuple(json.loads(line) for line in lines)


def fixture_records() -> list[dict]:
    """The real export's records, each with its `prompt` and `answer` texts alongside."""
    out = []
    for record in _records():
        user, assistant = record["messages"]
        prompt = next(part["text"] for part in user["content"] if part["type"] == "text")
        out.append(dict(record, prompt=prompt, answer=assistant["content"][0]["text"]))
    return out


def export_schema() -> pa.Schema:
    """The Arrow schema (and `datasets` metadata) of the real export's shards."""
    return pa.ipc.read_schema(pa.py_buffer((FIXTURE_DIR / "schema.arrow").read_bytes()))


def mask_columns() -> list[str]:
    return [name for name in export_schema().names if name.startswith("mask_")]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def random_png(rng: np.random.Generator, size_px: int) -> bytes:
    return png(rng.integers(0, 256, size=(size_px, size_px), dtype=np.uint8))


def make_row(record: dict, rng: np.random.Generator, *, size_px: int = 64, image: bytes | None = None) -> dict:
    """A shard row of `record` (a fixture record or one shaped like it), with random (or given) image bytes."""
    row = {name: record[name] for name in ("id", "task", "stage", "label_dr", "fov_mm", "messages")}
    row["index"] = record.get("index", 0)
    row["images"] = [{"bytes": image if image is not None else random_png(rng, size_px), "path": f"{record['id']}.png"}]
    row["metadata"] = json.dumps({"index": row["index"], "synthetic_pixels": True}, sort_keys=True)
    blank = png(np.zeros((size_px // 2, size_px // 2), dtype=np.uint8))
    row.update({name: blank for name in mask_columns()})
    return row


def conversation(prompt: str, answer: str) -> list[dict]:
    """The `messages` of an exported record: user (image part, text part), assistant (text part)."""
    return [
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def write_export(
    out_dir: str | Path,
    rows: list[dict],
    *,
    num_shards: int = 2,
    split: str = "train",
    plain_pyarrow: bool = False,
    prompts: bool = True,
) -> list[Path]:
    """Write `rows` as `<out_dir>/data/<split>-0000i-of-0000n.parquet` in the exporter's schema.

    `prompts` also copies the real export's `prompts.json` beside the shards, as the exporter's card does.
    """
    data_dir = Path(out_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    schema = export_schema()
    if plain_pyarrow:
        schema = schema.remove_metadata()
    paths = []
    for shard, chunk in enumerate(np.array_split(np.arange(len(rows)), num_shards)):
        path = data_dir / f"{split}-{shard:05d}-of-{num_shards:05d}.parquet"
        pq.write_table(pa.Table.from_pylist([rows[i] for i in chunk], schema=schema), path)
        paths.append(path)
    if prompts:
        shutil.copy(FIXTURE_DIR / "prompts.json", Path(out_dir) / "prompts.json")
    return paths
