"""Shared fixtures for the train_vlm tests: offline, single-threaded, one tiny model and one tiny export.

Run as its own process:  OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/vlm -q
"""

from __future__ import annotations

import os
import tempfile

# Before anything imports huggingface_hub / datasets / transformers: no hub at run time, and a fresh,
# empty cache so nothing downloaded earlier on this machine can leak into a test.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="train_vlm_hf_home_")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))  # export_writer lives beside the tests

from export_writer import fixture_records, make_row, write_export  # noqa: E402

IMAGE_SIZE_PX = 128  # 8 x 8 patches of 16 px -> 16 image tokens after the 2 x 2 merge
TINY_MIN_PIXELS = 32 * 32
TINY_MAX_PIXELS = 128 * 128


def short_answer_records(n: int = 8) -> list[dict]:
    """`n` real exported stage and yes/no records: one per prompt, each with the shortest answer it has
    (stage prompts alternate DR and no DR; exported yes-answers are long, so yes/no prompts take theirs).

    One answer per prompt keeps the loss tests about training, not about telling random images apart (the
    vision mode steers a frozen random language model through image tokens alone).
    """
    records = sorted(fixture_records(), key=lambda r: (len(r["answer"]), r["id"]))
    prompts = sorted({(r["task"], r["prompt"]) for r in records if r["task"] in ("stage", "dr_yes_no")})
    chosen = []
    for index, (task, prompt) in enumerate(prompts[:n]):
        label = index % 2 if task == "stage" else 0
        chosen.append(next(r for r in records if r["prompt"] == prompt and r["label_dr"] == label))
    return chosen


def fixed_records() -> list[dict]:
    """The 8 fixed rows of the loss tests: short real stage and yes/no answers over distinct random images."""
    rng = np.random.default_rng(1234)
    return [make_row(record, rng, size_px=IMAGE_SIZE_PX) for record in short_answer_records(8)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from train_vlm.tiny import build_tiny_qwen3_vl

    # The fixed records' texts in the tokenizer's corpus make them short in tokens (fast tests), as the
    # built-in corpus does for the exporter's common words.
    texts = [text for record in short_answer_records(8) for text in (record["prompt"], record["answer"])] * 8
    return build_tiny_qwen3_vl(
        tmp_path_factory.mktemp("tiny_qwen3_vl"), seed=0, extra_texts=texts,
        min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS,
    )  # fmt: skip


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    """An export folder with the 8 fixed records in 2 shards (`data/train-0000i-of-00002.parquet`)."""
    out = tmp_path_factory.mktemp("export")
    write_export(out, fixed_records(), num_shards=2)
    return out


def tiny_model_args(model_dir, **overrides):
    from train_vlm.model import ModelArguments

    fields = dict(
        model_name_or_path=str(model_dir),
        dtype="float32",
        local_files_only=True,
        image_min_pixels=TINY_MIN_PIXELS,
        image_max_pixels=TINY_MAX_PIXELS,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
    )
    fields.update(overrides)
    return ModelArguments(**fields)


def tiny_sft_config(output_dir, *, max_steps: int, learning_rate: float, **overrides):
    """CPU, fp32, no checkpointing or logging services: only what the tiny tests need."""
    from trl import SFTConfig

    fields = dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        seed=0,
        max_length=None,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    fields.update(overrides)
    return SFTConfig(**fields)


def write_labelled_folder(root: Path, rows) -> dict[str, bytes]:
    """An OCTA-500-shaped folder: labels.csv + OCTA_{3,6}mm/images/<id>.png for rows (id, scan_mm, disease, ...)."""
    import csv
    import io

    from PIL import Image

    pngs = {}
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "scan_mm", "disease", "sex", "eye", "age", "image"])
        for index, (image_id, scan_mm, disease, *_) in enumerate(rows):
            relative = f"OCTA_{scan_mm}mm/images/{image_id}.png"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(index).integers(0, 256, size=(128, 128), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
            pngs[image_id] = buffer.getvalue()
            (root / relative).write_bytes(pngs[image_id])
            writer.writerow([image_id, scan_mm, disease, "F", "OD", 50, relative])
    return pngs
