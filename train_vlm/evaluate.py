"""Zero-shot evaluation of a Qwen3-VL model (base, LoRA adapter or merged) on a labelled folder of real scans.

    python -m train_vlm.evaluate --model out/vision --images_root ../shared/data/octa500 \
        --output_dir out/eval-octa500

Input: a labels CSV shaped like OCTA-500's (`id, scan_mm, disease, ..., image` with image paths relative
to `images_root`). Each image gets one fixed prompt; the answer is parsed (`train_vlm.answers`) into DR /
no DR, and a second, scoring prompt gives P(Yes) from the next-token probabilities of Yes vs No, for the
AUC. Written to `output_dir`: `predictions.jsonl` (one line per image) and `metrics.json` (balanced
accuracy, per-class recall, confusion matrix with an unparseable column, AUC — for 3 mm, 6 mm and pooled —
and the list of unparseable answers). Unparseable answers count as wrong.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, HfArgumentParser

from .answers import parse_answer
from .metrics import classification_report
from .model import load_processor

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "This is an en-face OCTA image of the superficial retinal vasculature. Describe the findings relevant to "
    "diabetic retinopathy, then end with a last line of the form 'Diagnosis: <X>', where X is one of: "
    "normal, mild NPDR, moderate NPDR, severe NPDR, PDR."
)
DEFAULT_SCORE_PROMPT = "Does this OCTA image show diabetic retinopathy? Answer Yes or No."
DR_CLASSES = ("no_dr", "dr")


@dataclass
class EvalArguments:
    """Model, data and prompts for one evaluation run."""

    model: str = field(metadata={"help": "Base checkpoint, merged checkpoint, or LoRA adapter folder."})
    images_root: str = field(metadata={"help": "Folder that the labels CSV's image paths are relative to."})
    output_dir: str = field(metadata={"help": "Where predictions.jsonl and metrics.json go."})
    labels_csv: str | None = field(default=None, metadata={"help": "Defaults to <images_root>/labels.csv."})
    base_model: str | None = field(
        default=None, metadata={"help": "Base for an adapter; defaults to the adapter's base_model_name_or_path."}
    )
    prompt: str = field(default=DEFAULT_PROMPT, metadata={"help": "Fixed prompt asking for the diagnosis."})
    score_prompt: str | None = field(
        default=DEFAULT_SCORE_PROMPT, metadata={"help": "Yes/No prompt whose P(Yes) is the AUC score; '' disables."}
    )
    id_column: str = "id"
    image_column: str = "image"
    label_column: str = "disease"
    fov_column: str = field(default="scan_mm", metadata={"help": "Field of view in mm (3 or 6)."})
    positive_labels: list[str] = field(default_factory=lambda: ["DR"], metadata={"help": "Labels that mean DR."})
    keep_labels: list[str] | None = field(
        default=None, metadata={"help": "Evaluate only rows with these labels (e.g. NORMAL DR); None keeps all."}
    )
    limit: int | None = field(default=None, metadata={"help": "First N rows only (smoke runs)."})
    batch_size: int = 8
    max_new_tokens: int = 512
    dtype: str = "bfloat16"
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ...; None picks cuda when present."})
    attn_implementation: str | None = None
    # Native size: OCTA-500's 304 px and 400 px scans pass through, rounded to a multiple of 32 px.
    image_min_pixels: int | None = 256 * 256
    image_max_pixels: int | None = 1024 * 1024
    local_files_only: bool = False


@dataclass(frozen=True)
class LabelledImage:
    image_id: str
    path: Path
    label: str
    fov_mm: float | None


def read_labels(args: EvalArguments) -> list[LabelledImage]:
    """Rows of the labels CSV whose images exist; a missing image or column is an error naming it."""
    root = Path(args.images_root)
    labels_csv = Path(args.labels_csv) if args.labels_csv else root / "labels.csv"
    if not labels_csv.is_file():
        raise FileNotFoundError(f"No labels CSV at {labels_csv}; pass --labels_csv")
    with labels_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        needed = [args.id_column, args.image_column, args.label_column]
        missing = [name for name in needed if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{labels_csv} lacks column(s) {missing}; it has {reader.fieldnames}")
        rows = list(reader)
    keep = set(args.keep_labels) if args.keep_labels else None
    items = []
    for row in rows:
        if keep is not None and row[args.label_column] not in keep:
            continue
        path = root / row[args.image_column]
        if not path.is_file():
            raise FileNotFoundError(f"Image {path} (row id {row[args.id_column]}) listed in {labels_csv} is missing")
        fov = row.get(args.fov_column)
        items.append(
            LabelledImage(
                image_id=row[args.id_column],
                path=path,
                label=row[args.label_column],
                fov_mm=float(fov) if fov not in (None, "") else None,
            )
        )
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise ValueError(f"No rows to evaluate in {labels_csv} (keep_labels={args.keep_labels})")
    return items


def load_for_inference(args: EvalArguments):
    """Model in eval mode and its processor, from a full checkpoint or from base + LoRA adapter."""
    dtype = getattr(torch, args.dtype)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_kwargs = dict(dtype=dtype, local_files_only=args.local_files_only)
    if args.attn_implementation:
        model_kwargs["attn_implementation"] = args.attn_implementation
    adapter_config = Path(args.model) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base = args.base_model or json.loads(adapter_config.read_text())["base_model_name_or_path"]
        model = AutoModelForImageTextToText.from_pretrained(base, **model_kwargs)
        model = PeftModel.from_pretrained(model, args.model)
        has_processor = any((Path(args.model) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
        processor_source = args.model if has_processor else base
    else:
        model = AutoModelForImageTextToText.from_pretrained(args.model, **model_kwargs)
        processor_source = args.model
    processor = load_processor(
        processor_source,
        min_pixels=args.image_min_pixels,
        max_pixels=args.image_max_pixels,
        local_files_only=args.local_files_only,
    )
    # Decoder-only batched generation: pad on the left so every row's next token sits at the last position.
    processor.tokenizer.padding_side = "left"
    return model.to(device).eval(), processor


def _conversation(prompt: str, image: Image.Image) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]


def _batch_inputs(processor, prompt: str, images: list[Image.Image], device):
    inputs = processor.apply_chat_template(
        [_conversation(prompt, image) for image in images],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"},
    )
    return inputs.to(device)


def _first_token_id(tokenizer, word: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False)
    if not ids:
        raise ValueError(f"The tokenizer encodes {word!r} to no token")
    return ids[0]


@torch.no_grad()
def generate_answers(model, processor, prompt: str, images: list[Image.Image], *, max_new_tokens: int) -> list[str]:
    """Greedy answers for a batch of images with the same prompt."""
    inputs = _batch_inputs(processor, prompt, images, model.device)
    tokenizer = processor.tokenizer
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


@torch.no_grad()
def yes_probabilities(model, processor, prompt: str, images: list[Image.Image]) -> list[float]:
    """P(Yes) / (P(Yes) + P(No)) for the first answer token after `prompt`: a DR score for the AUC."""
    tokenizer = processor.tokenizer
    yes_id, no_id = _first_token_id(tokenizer, "Yes"), _first_token_id(tokenizer, "No")
    if yes_id == no_id:
        raise ValueError("'Yes' and 'No' start with the same token; the yes/no score is undefined")
    inputs = _batch_inputs(processor, prompt, images, model.device)
    logits = model(**inputs).logits[:, -1, :].float()  # [batch, vocab]
    pair = torch.stack([logits[:, yes_id], logits[:, no_id]], dim=-1)  # [batch, 2]
    return torch.softmax(pair, dim=-1)[:, 0].tolist()


def _fov_group(fov_mm: float | None) -> str:
    return "unknown_fov" if fov_mm is None else f"{fov_mm:g}mm"


def compute_metrics(predictions: list[dict]) -> dict:
    """Reports for each field of view and pooled, the unparseable answers, and DR-call rates per label."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for prediction in predictions:
        groups[_fov_group(prediction["fov_mm"])].append(prediction)
    groups = dict(sorted(groups.items()))
    groups["pooled"] = predictions
    reports = {}
    for name, rows in groups.items():
        scores = [row["score_dr"] for row in rows]
        reports[name] = classification_report(
            [row["true_class"] for row in rows],
            [row["predicted_class"] for row in rows],
            DR_CLASSES,
            positive_class="dr",
            scores=None if all(score is None for score in scores) else scores,
        )
    called_dr: dict[str, list[int]] = defaultdict(list)
    for row in predictions:
        called_dr[row["label"]].append(int(row["predicted_class"] == "dr"))
    return {
        "groups": reports,
        "predicted_dr_rate_by_label": {
            label: {"n": len(calls), "rate": sum(calls) / len(calls)} for label, calls in sorted(called_dr.items())
        },
        "unparseable": [
            {"id": row["id"], "fov_mm": row["fov_mm"], "answer": row["answer"]}
            for row in predictions
            if row["predicted_class"] is None
        ],
    }


def evaluate(args: EvalArguments) -> dict:
    """Run the model over the labelled folder; write predictions.jsonl and metrics.json; return the metrics."""
    items = read_labels(args)
    model, processor = load_for_inference(args)
    positive = set(args.positive_labels)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    predictions = []
    for start in range(0, len(items), args.batch_size):
        batch = items[start : start + args.batch_size]
        images = [Image.open(item.path).convert("RGB") for item in batch]
        answers = generate_answers(model, processor, args.prompt, images, max_new_tokens=args.max_new_tokens)
        scores = (
            yes_probabilities(model, processor, args.score_prompt, images) if args.score_prompt else [None] * len(batch)
        )
        for item, answer, score in zip(batch, answers, scores):
            parsed = parse_answer(answer)
            true_class = "dr" if item.label in positive else "no_dr"
            predicted_class = None if parsed.dr is None else ("dr" if parsed.dr else "no_dr")
            predictions.append(
                {
                    "id": item.image_id,
                    "image": str(item.path),
                    "fov_mm": item.fov_mm,
                    "label": item.label,
                    "true_class": true_class,
                    "answer": answer,
                    "parse_source": parsed.source,
                    "predicted_stage": parsed.stage,
                    "predicted_class": predicted_class,
                    "correct": predicted_class == true_class,
                    "score_dr": None if score is None or not math.isfinite(score) else score,
                }
            )
        logger.info("evaluated %d / %d images", len(predictions), len(items))
    return write_results(predictions, output_dir, args)


def write_results(predictions: list[dict], output_dir: Path, args: EvalArguments | None = None) -> dict:
    """`predictions.jsonl` (one line per image) and `metrics.json`; returns the metrics."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "predictions.jsonl").open("w") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction) + "\n")
    metrics = compute_metrics(predictions)
    if args is not None:
        metrics["config"] = asdict(args)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses(args=argv)
    metrics = evaluate(args)
    pooled = metrics["groups"]["pooled"]
    print(
        f"pooled: n={pooled['n']} balanced_accuracy={pooled['balanced_accuracy']} auc={pooled.get('auc')} "
        f"unparseable={pooled['n_unparseable']}  -> {Path(args.output_dir) / 'metrics.json'}"
    )
    return metrics


if __name__ == "__main__":
    main()
