"""A small, real writer of the export schema (what the simulator's exporter writes), for tests.

Two flavours, because a reader must cope with both: `datasets` Parquet (with the Image feature in the
schema metadata) and plain pyarrow (the same struct {bytes, path}, no metadata).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

STAGE_TO_DIAGNOSIS = {
    "normal": "normal",
    "mild": "mild NPDR",
    "moderate": "moderate NPDR",
    "severe": "severe NPDR",
    "pdr": "PDR",
}
STAGES = tuple(STAGE_TO_DIAGNOSIS)
REASONING_PROMPT = "Describe the retinal vasculature in this OCTA image and give the diagnosis."
STAGE_PROMPT = "What is the stage of diabetic retinopathy?"
YES_NO_PROMPT = "Does this OCTA image show diabetic retinopathy? Answer Yes or No."


def random_png(rng: np.random.Generator, size_px: int) -> bytes:
    pixels = rng.integers(0, 256, size=(size_px, size_px), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def make_record(index: int, rng: np.random.Generator, *, size_px: int = 64, task: str | None = None) -> dict:
    stage = STAGES[index % len(STAGES)]
    label_dr = int(stage != "normal")
    fov_mm = 3.0 if index % 2 == 0 else 6.0
    task = task or ("reasoning" if index % 2 == 0 else "dr_yes_no")
    if task == "dr_yes_no":
        prompt, answer = YES_NO_PROMPT, "Yes" if label_dr else "No"
    elif task == "stage":
        prompt, answer = STAGE_PROMPT, f"Diagnosis: {STAGE_TO_DIAGNOSIS[stage]}"
    else:
        prompt = REASONING_PROMPT
        answer = f"Vessel density is reduced.\nDiagnosis: {STAGE_TO_DIAGNOSIS[stage]}"
    record_id = f"{index:06d}"
    return {
        "id": record_id,
        "images": [{"bytes": random_png(rng, size_px), "path": f"{record_id}.png"}],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "task": task,
        "stage": stage,
        "label_dr": label_dr,
        "fov_mm": fov_mm,
        "metadata": json.dumps({"seed": index, "n_microaneurysms": index % 4}),
        # An extra mask column, as the exporter may add: readers must ignore it.
        "faz_mask": random_png(rng, size_px // 2),
    }


EXPORT_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "messages": datasets.List(
            {
                "role": datasets.Value("string"),
                "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")}),
            }
        ),
        "task": datasets.Value("string"),
        "stage": datasets.Value("string"),
        "label_dr": datasets.Value("int64"),
        "fov_mm": datasets.Value("float64"),
        "metadata": datasets.Value("string"),
        "faz_mask": datasets.Value("binary"),
    }
)


def write_export(
    out_dir: str | Path,
    records: list[dict],
    *,
    num_shards: int = 2,
    split: str = "train",
    plain_pyarrow: bool = False,
) -> list[Path]:
    """Write `records` as `<out_dir>/data/<split>-0000i-of-0000n.parquet` shards."""
    data_dir = Path(out_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, chunk in enumerate(np.array_split(np.arange(len(records)), num_shards)):
        rows = [records[i] for i in chunk]
        path = data_dir / f"{split}-{shard:05d}-of-{num_shards:05d}.parquet"
        if plain_pyarrow:
            pq.write_table(pa.Table.from_pylist(rows), path)
        else:
            datasets.Dataset.from_list(rows, features=EXPORT_FEATURES).to_parquet(str(path))
        paths.append(path)
    return paths
