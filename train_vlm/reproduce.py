"""The SVR protocol in one command: export -> train -> merge -> evaluate base and tuned -> Markdown report.

    svr-vlm reproduce --output_dir outputs/svr --images_root ../shared/data/octa500 \\
        --export_overrides "n=10000"                       # one GPU, Qwen3-VL-8B, the paper's recipe
    svr-vlm reproduce --output_dir outputs/svr --images_root ../shared/data/octa500 \\
        --launcher "accelerate launch --config_file train_vlm/accelerate/zero3.yaml"   # 8 GPUs for training
    svr-vlm reproduce --output_dir /tmp/svr-tiny --images_root ../shared/data/octa500 --tiny true \\
        --export_overrides "n=64 masks=false llamafactory=false" --max_new_tokens 16   # CPU, minutes

Steps, each in `output_dir`:

1. `export/`: `svr export out=export/ <export_overrides>` in its own process (the simulator is JAX;
   this package never imports it). An export whose manifest says complete is reused.
2. `train/`: `python -m train_vlm.train --config <recipe>` (default `recipes/vision.yaml`, the paper's
   recipe) in its own process, or under `--launcher` (accelerate / DeepSpeed). It resumes by itself.
3. `merged/`: a LoRA adapter is merged into its base; a vision or full checkpoint is used as it is.
4. `eval-base/`, `eval-tuned/`: both models on the labelled folder, DR vs NORMAL, with the prompts of
   the export, bootstrap 95 % intervals per field and pooled.
5. `report.md` (both side by side, with the recipe, the timings and where they differ from the paper)
   and `reproduce.json` (the same figures, machine-readable).

`--tiny true` builds a tiny random Qwen3-VL (`train_vlm.tiny`) as the base model and runs on the CPU
with the recipe unchanged but for the pixel budget, fp32 instead of bf16 (CPUs without bf16 units emulate
it, tens of times slower) and no data-loader workers: it checks the whole path in minutes; its figures
mean nothing about the 8B model.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .evaluate import EvalArguments, evaluate
from .report import comparison_report

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).parent / "recipes"
TINY_MIN_PIXELS, TINY_MAX_PIXELS = 32 * 32, 128 * 128
# The hyper-parameters the SVR paper states, and the recipe keys they live in.
PAPER = {
    "train_mode": "vision",
    "learning_rate": 1e-5,
    "num_train_epochs": 1,
    "image_max_pixels": 262_144,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 2,
}


@dataclass
class ReproduceArguments:
    """Where everything goes, what to export, which recipe, and how to evaluate."""

    output_dir: str = field(metadata={"help": "Root folder of the run (export/, train/, eval-*/, report.md)."})
    images_root: str = field(metadata={"help": "Labelled folder of real scans (OCTA-500 shape: labels.csv)."})
    labels_csv: str | None = field(default=None, metadata={"help": "Defaults to <images_root>/labels.csv."})
    export_dir: str | None = field(default=None, metadata={"help": "Defaults to <output_dir>/export."})
    export_overrides: str = field(default="n=10000", metadata={"help": "svr export key=value overrides."})
    svr_command: str | None = field(
        default=None, metadata={"help": "How to run the simulator's CLI; default: this Python -m svr_jax.cli."}
    )
    recipe: str = field(default=str(RECIPES / "vision.yaml"), metadata={"help": "Training recipe YAML."})
    model: str | None = field(default=None, metadata={"help": "Base model; default: the recipe's."})
    tiny: bool = field(default=False, metadata={"help": "Tiny random Qwen3-VL on the CPU (a path check)."})
    train_overrides: str = field(default="", metadata={"help": "Extra train flags, e.g. '--max_steps 10'."})
    launcher: str | None = field(
        default=None, metadata={"help": "Prefix for training, e.g. 'accelerate launch --config_file ...'."}
    )
    other_labels: list[str] = field(default_factory=list, metadata={"help": "Also evaluate, reported apart."})
    batch_size: int = 8
    max_new_tokens: int = 512
    dtype: str = "bfloat16"
    device: str | None = None
    n_resamples: int = 2000
    local_files_only: bool = False


def _run(command: list[str]) -> float:
    """Run a step in its own process; its wall time in seconds."""
    logger.info("$ %s", shlex.join(command))
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def export_step(args: ReproduceArguments, export_dir: Path) -> dict:
    manifest = export_dir / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("complete"):
        logger.info("reusing the complete export in %s", export_dir)
        return {"seconds": 0.0, "reused": True}
    svr = shlex.split(args.svr_command) if args.svr_command else [sys.executable, "-m", "svr_jax.cli"]
    seconds = _run([*svr, "export", f"out={export_dir}", *shlex.split(args.export_overrides)])
    return {"seconds": seconds, "reused": False}


def tiny_model(args: ReproduceArguments, root: Path) -> str:
    from .tiny import build_tiny_qwen3_vl

    return str(build_tiny_qwen3_vl(root / "tiny-model", seed=0, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS))


def train_command(args: ReproduceArguments, base: str, export_dir: Path, train_dir: Path) -> list[str]:
    launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    command = [*launcher, "-m", "train_vlm.train", "--config", args.recipe, "--train_data", str(export_dir),
               "--output_dir", str(train_dir), "--model_name_or_path", base]  # fmt: skip
    if args.local_files_only or args.tiny:
        command += ["--local_files_only", "true"]
    if args.tiny:
        import torch

        command += ["--image_min_pixels", str(TINY_MIN_PIXELS), "--image_max_pixels", str(TINY_MAX_PIXELS),
                    "--dataloader_num_workers", "0", "--logging_steps", "1", "--disable_tqdm", "true"]  # fmt: skip
        if not torch.cuda.is_available():
            # CPUs without bf16 units emulate it (tens of times slower): the CPU check runs in fp32.
            command += ["--use_cpu", "true", "--dtype", "float32", "--bf16", "false"]
    return command + shlex.split(args.train_overrides)


def merge_step(args: ReproduceArguments, train_dir: Path, merged_dir: Path) -> tuple[str, float | None]:
    """The tuned model's folder: the merge of a LoRA adapter, else the trained checkpoint itself."""
    if not (train_dir / "adapter_config.json").is_file():
        return str(train_dir), None
    from .merge_lora import MergeArguments, merge_lora

    start = time.perf_counter()
    merge_lora(MergeArguments(adapter=str(train_dir), output_dir=str(merged_dir), dtype=eval_dtype(args),
                              local_files_only=args.local_files_only or args.tiny))  # fmt: skip
    return str(merged_dir), time.perf_counter() - start


def eval_dtype(args: ReproduceArguments) -> str:
    """The evaluation dtype: as asked, except fp32 for the tiny model on a CPU (as its training)."""
    import torch

    return "float32" if args.tiny and not torch.cuda.is_available() else args.dtype


def evaluate_step(args: ReproduceArguments, model: str, export_dir: Path, output_dir: Path, pixels: tuple) -> dict:
    eval_args = EvalArguments(
        model=model, images_root=args.images_root, output_dir=str(output_dir), labels_csv=args.labels_csv,
        prompts_from=str(export_dir), other_labels=args.other_labels, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, dtype=eval_dtype(args), device=args.device,
        image_min_pixels=pixels[0], image_max_pixels=pixels[1],
        local_files_only=args.local_files_only or args.tiny, n_resamples=args.n_resamples,
    )  # fmt: skip
    start = time.perf_counter()
    metrics = evaluate(eval_args)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def applied_recipe(recipe: dict, command: list[str]) -> dict:
    """The recipe with the training command's `--key value` flags applied (what the run really used)."""
    applied = dict(recipe)
    flags = command[command.index("train_vlm.train") + 1 :]
    for key, value in zip(flags, flags[1:]):
        if key.startswith("--") and not value.startswith("--") and key != "--config":
            applied[key[2:]] = yaml.safe_load(value)
    return applied


def recipe_table(recipe: dict, overrides: str) -> list[str]:
    """The paper's hyper-parameters against what this run used."""
    lines = ["| hyper-parameter | SVR paper | this run |", "| --- | --- | --- |"]
    for key, value in PAPER.items():
        lines.append(f"| {key} | {value} | {recipe.get(key)} |")
    lines += [
        "",
        "Beyond the paper's stated values (this project's choices): "
        f"{recipe.get('lr_scheduler_type')} schedule with warmup {recipe.get('warmup_steps')}, "
        f"bf16={recipe.get('bf16')}, gradient checkpointing={recipe.get('gradient_checkpointing')}, "
        f"loss on assistant tokens only, no truncation, at least {recipe.get('image_min_pixels')} pixels per image.",
    ]
    if overrides.strip():
        lines.append(f"Train overrides for this run: `{overrides.strip()}`.")
    return lines


def reproduce(args: ReproduceArguments) -> dict:
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    export_dir = Path(args.export_dir) if args.export_dir else root / "export"
    recipe = yaml.safe_load(Path(args.recipe).read_text())
    timings: dict[str, float | None] = {}
    start = time.perf_counter()

    export = export_step(args, export_dir)
    timings["export_s"] = export["seconds"]
    base = tiny_model(args, root) if args.tiny else (args.model or recipe["model_name_or_path"])
    train_dir, merged_dir = root / "train", root / "merged"
    command = train_command(args, base, export_dir, train_dir)
    timings["train_s"] = _run(command)
    tuned, timings["merge_s"] = merge_step(args, train_dir, merged_dir)
    pixels = (TINY_MIN_PIXELS, TINY_MAX_PIXELS) if args.tiny else (recipe.get("image_min_pixels"), recipe.get("image_max_pixels"))
    base_metrics = evaluate_step(args, base, export_dir, root / "eval-base", pixels)
    tuned_metrics = evaluate_step(args, tuned, export_dir, root / "eval-tuned", pixels)
    timings["evaluate_base_s"], timings["evaluate_tuned_s"] = base_metrics["seconds"], tuned_metrics["seconds"]
    timings["total_s"] = time.perf_counter() - start

    manifest_path = export_dir / "manifest.json"
    rows = json.loads(manifest_path.read_text()).get("rows") if manifest_path.is_file() else None
    applied = applied_recipe(recipe, command)
    preamble = [
        f"Base model `{base}`{' (tiny random Qwen3-VL: a path check, not a result)' if args.tiny else ''}; "
        f"tuned model `{tuned}`.",
        f"Training data: `{export_dir}` ({rows} pairs; "
        f"{'reused' if export['reused'] else 'svr export ' + args.export_overrides}). "
        f"Evaluation images: `{args.images_root}`.",
        "",
        f"Recipe `{args.recipe}`:",
        "",
        *recipe_table(applied, args.train_overrides),
        "",
        "Wall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items() if v is not None) + ".",
        "",
        f"Training command: `{shlex.join(command)}`",
    ]
    report = comparison_report(
        {"base": base_metrics, "tuned": tuned_metrics}, title="SVR reproduction: base vs tuned", preamble=preamble
    )
    (root / "report.md").write_text(report)
    summary = {
        "arguments": asdict(args),
        "base_model": base,
        "tuned_model": tuned,
        "export_rows": rows,
        "timings": timings,
        "train_command": command,
        "groups": {
            name: {group: {k: r.get(k) for k in ("n", "balanced_accuracy", "auc", "n_unparseable", "intervals")}
                   for group, r in metrics["groups"].items()}
            for name, metrics in (("base", base_metrics), ("tuned", tuned_metrics))
        },  # fmt: skip
    }
    (root / "reproduce.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    (args,) = HfArgumentParser(ReproduceArguments).parse_args_into_dataclasses(args=argv)
    summary = reproduce(args)
    print(json.dumps({"report": str(Path(args.output_dir) / "report.md"), **summary["timings"]}))
    return summary


if __name__ == "__main__":
    main()
