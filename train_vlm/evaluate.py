"""Evaluation of a Qwen3-VL model (base, LoRA adapter or merged) on a labelled folder of real scans.

    python -m train_vlm.evaluate --model out/vision --images_root ../shared/data/octa500 \
        --output_dir out/eval-octa500 --prompts_from /data/svr-export

Input: a labels CSV shaped like OCTA-500's (`id, scan_mm, disease, ..., image` with image paths relative
to `images_root`). The headline task is DR vs NORMAL (`--positive_labels DR --negative_labels NORMAL`);
other labels (AMD, CNV, ...) are evaluated only when named in `--other_labels`, and reported apart (how
often each is called DR), never inside the headline figures.

Prompts come from the training export's prompt set (`train_vlm.prompts`): `--prompts_from`, else the
`prompts.json` that `train` left in the model folder. Each image gets the reasoning prompt that asks for
a `Diagnosis:` line; the answer is parsed (`train_vlm.answers`) into DR / no DR, and the export's yes/no
prompt gives P(Yes) from the next-token probabilities of Yes vs No, the score of the AUC.

Written to `output_dir`: `predictions.jsonl` (one line per image), `metrics.json` (for 3 mm, 6 mm and
pooled: balanced accuracy and AUC with stratified bootstrap 95 % intervals, per-class recall, confusion
matrix with an unparseable column; the other labels' DR-call rates; every unparseable answer) and
`report.md` (the same as a table). Unparseable answers count as wrong.
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
from .intervals import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_intervals
from .metrics import classification_report
from .model import load_processor
from .prompts import (
    FALLBACK_PROMPT,
    FALLBACK_SCORE_PROMPT,
    find_prompt_set,
    generation_prompt,
    score_prompt,
)
from .report import evaluation_report

logger = logging.getLogger(__name__)

DR_CLASSES = ("no_dr", "dr")
ALL_OTHER_LABELS = "all"


@dataclass
class EvalArguments:
    """Model, data and prompts for one evaluation run."""

    model: str = field(metadata={"help": "Base checkpoint, merged checkpoint, or LoRA adapter folder."})
    images_root: str = field(metadata={"help": "Folder that the labels CSV's image paths are relative to."})
    output_dir: str = field(metadata={"help": "Where predictions.jsonl, metrics.json and report.md go."})
    labels_csv: str | None = field(default=None, metadata={"help": "Defaults to <images_root>/labels.csv."})
    base_model: str | None = field(
        default=None, metadata={"help": "Base for an adapter; defaults to the adapter's base_model_name_or_path."}
    )
    prompts_from: str | None = field(
        default=None,
        metadata={"help": "Export folder or prompts.json whose prompt set to use; default: the model folder's."},
    )
    prompt: str | None = field(default=None, metadata={"help": "Explicit prompt (overrides the prompt set)."})
    score_prompt: str | None = field(
        default=None, metadata={"help": "Explicit Yes/No prompt for the AUC score; '' disables the score."}
    )
    id_column: str = "id"
    image_column: str = "image"
    label_column: str = "disease"
    fov_column: str = field(default="scan_mm", metadata={"help": "Field of view in mm (3 or 6)."})
    positive_labels: list[str] = field(default_factory=lambda: ["DR"], metadata={"help": "Labels that mean DR."})
    negative_labels: list[str] = field(
        default_factory=lambda: ["NORMAL"], metadata={"help": "Labels that mean no DR in the headline figures."}
    )
    other_labels: list[str] = field(
        default_factory=list,
        metadata={"help": f"Also evaluate these labels, reported apart ('{ALL_OTHER_LABELS}': every other label)."},
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
    n_resamples: int = field(default=DEFAULT_RESAMPLES, metadata={"help": "Bootstrap resamples per interval."})
    confidence: float = field(default=DEFAULT_CONFIDENCE, metadata={"help": "Interval coverage."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap."})


@dataclass(frozen=True)
class Prompts:
    generation: str
    score: str | None
    source: str  # where they came from


def resolve_prompts(args: EvalArguments) -> Prompts:
    """Explicit prompts first, then the prompt set of `--prompts_from` or of the model folder, else fallbacks."""
    prompt_set = find_prompt_set(args.prompts_from) if args.prompts_from else find_prompt_set(args.model)
    if args.prompts_from and prompt_set is None:
        raise FileNotFoundError(f"No prompt set in {args.prompts_from}: expected prompts.json or export shards")
    if prompt_set is None:
        logger.warning("No prompt set found (pass --prompts_from EXPORT): using train_vlm's fallback prompts")
        generation, score, source = FALLBACK_PROMPT, FALLBACK_SCORE_PROMPT, "fallback"
    else:
        generation, score, source = generation_prompt(prompt_set), score_prompt(prompt_set), prompt_set.source
    if args.prompt is not None:
        generation, source = args.prompt, "explicit"
    if args.score_prompt is not None:
        score = args.score_prompt or None
    return Prompts(generation, score, source)


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
    headline = set(args.positive_labels) | set(args.negative_labels)
    others = set(args.other_labels)
    items = []
    for row in rows:
        label = row[args.label_column]
        if label not in headline and ALL_OTHER_LABELS not in others and label not in others:
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
        raise ValueError(
            f"No rows to evaluate in {labels_csv} (labels {sorted(headline)} + other_labels {sorted(others)})"
        )
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


def group_metrics(rows: list[dict], *, strata: list | None, n_resamples: int, confidence: float, seed: int) -> dict:
    """One group's classification report with bootstrap intervals of balanced accuracy and AUC."""
    y_true = [row["true_class"] for row in rows]
    y_pred = [row["predicted_class"] for row in rows]
    scores = [row["score_dr"] for row in rows]
    has_scores = any(score is not None for score in scores)
    report = classification_report(
        y_true, y_pred, DR_CLASSES, positive_class="dr", scores=scores if has_scores else None
    )
    intervals = bootstrap_intervals(
        y_true, y_pred, positive_class="dr", scores=scores if has_scores else None, strata=strata,
        n_resamples=n_resamples, confidence=confidence, seed=seed,
    )  # fmt: skip
    report["intervals"] = {name: interval.as_json() for name, interval in intervals.items()}
    return report


def compute_metrics(
    predictions: list[dict],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict:
    """Headline (DR vs no DR) reports per field of view and pooled, other labels apart, unparseable answers.

    A row is in the headline when its `true_class` is set (its label is a positive or negative label).
    The pooled intervals resample within each field, so both fields keep their share of eyes.
    """
    headline = [row for row in predictions if row["true_class"] is not None]
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in headline:
        groups[_fov_group(row["fov_mm"])].append(row)
    reports = {
        name: group_metrics(rows, strata=None, n_resamples=n_resamples, confidence=confidence, seed=seed)
        for name, rows in sorted(groups.items())
    }
    if headline:
        reports["pooled"] = group_metrics(
            headline, strata=[_fov_group(row["fov_mm"]) for row in headline],
            n_resamples=n_resamples, confidence=confidence, seed=seed,
        )  # fmt: skip
    others: dict[str, list[dict]] = defaultdict(list)
    for row in predictions:
        if row["true_class"] is None:
            others[row["label"]].append(row)
    return {
        "task": "DR vs no DR",
        "groups": reports,
        "other_labels": {
            label: {
                "n": len(rows),
                "called_dr": sum(row["predicted_class"] == "dr" for row in rows),
                "called_dr_rate": sum(row["predicted_class"] == "dr" for row in rows) / len(rows),
                "n_unparseable": sum(row["predicted_class"] is None for row in rows),
                "by_fov": {
                    group: sum(row["predicted_class"] == "dr" for row in rows if _fov_group(row["fov_mm"]) == group)
                    / max(1, sum(_fov_group(row["fov_mm"]) == group for row in rows))
                    for group in sorted({_fov_group(row["fov_mm"]) for row in rows})
                },
            }
            for label, rows in sorted(others.items())
        },
        "unparseable": [
            {"id": row["id"], "fov_mm": row["fov_mm"], "label": row["label"], "answer": row["answer"]}
            for row in predictions
            if row["predicted_class"] is None
        ],
    }


def true_class(label: str, args: EvalArguments) -> str | None:
    """dr / no_dr for the headline labels; None for a label evaluated only on request (reported apart)."""
    if label in args.positive_labels:
        return "dr"
    if label in args.negative_labels:
        return "no_dr"
    return None


def evaluate(args: EvalArguments) -> dict:
    """Run the model over the labelled folder; write predictions, metrics and report; return the metrics."""
    overlap = set(args.positive_labels) & set(args.negative_labels)
    if overlap:
        raise ValueError(f"labels {sorted(overlap)} are both positive and negative")
    items = read_labels(args)
    prompts = resolve_prompts(args)
    logger.info("prompts from %s: %r / score %r", prompts.source, prompts.generation, prompts.score)
    model, processor = load_for_inference(args)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    predictions = []
    for start in range(0, len(items), args.batch_size):
        batch = items[start : start + args.batch_size]
        images = [Image.open(item.path).convert("RGB") for item in batch]
        answers = generate_answers(model, processor, prompts.generation, images, max_new_tokens=args.max_new_tokens)
        scores = (
            yes_probabilities(model, processor, prompts.score, images) if prompts.score else [None] * len(batch)
        )
        for item, answer, score in zip(batch, answers, scores):
            parsed = parse_answer(answer)
            truth = true_class(item.label, args)
            predicted_class = None if parsed.dr is None else ("dr" if parsed.dr else "no_dr")
            predictions.append(
                {
                    "id": item.image_id,
                    "image": str(item.path),
                    "fov_mm": item.fov_mm,
                    "label": item.label,
                    "true_class": truth,
                    "answer": answer,
                    "parse_source": parsed.source,
                    "predicted_stage": parsed.stage,
                    "predicted_class": predicted_class,
                    "correct": None if truth is None else predicted_class == truth,
                    "score_dr": None if score is None or not math.isfinite(score) else score,
                }
            )
        logger.info("evaluated %d / %d images", len(predictions), len(items))
    return write_results(predictions, output_dir, args, prompts)


def write_results(
    predictions: list[dict], output_dir: Path, args: EvalArguments | None = None, prompts: Prompts | None = None
) -> dict:
    """`predictions.jsonl` (one line per image), `metrics.json` and `report.md`; returns the metrics."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "predictions.jsonl").open("w") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction) + "\n")
    settings = args or EvalArguments(model="", images_root="", output_dir=str(output_dir))
    metrics = compute_metrics(
        predictions, n_resamples=settings.n_resamples, confidence=settings.confidence, seed=settings.seed
    )
    if args is not None:
        metrics["config"] = asdict(args)
    if prompts is not None:
        metrics["prompts"] = asdict(prompts)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (output_dir / "report.md").write_text(evaluation_report(metrics, title=f"Evaluation of `{settings.model}`"))
    return metrics


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses(args=argv)
    metrics = evaluate(args)
    pooled = metrics["groups"].get("pooled", {})
    print(
        f"pooled: n={pooled.get('n')} balanced_accuracy={pooled.get('balanced_accuracy')} auc={pooled.get('auc')} "
        f"unparseable={pooled.get('n_unparseable')}  -> {Path(args.output_dir) / 'report.md'}"
    )
    return metrics


if __name__ == "__main__":
    main()
