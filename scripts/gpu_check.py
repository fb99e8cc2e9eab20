"""The measuring parts of `scripts/gpu_check.sh`, one per process (JAX and torch never share one).

    python scripts/gpu_check.py throughput-tiny OUT.json          # --cpu: the export renderer at toy size
    python scripts/gpu_check.py export OUT.json EXPORT_DIR [--cpu] # pairs/s of an export, compile apart
    python scripts/gpu_check.py train OUT.json EXPORT_DIR [--cpu]  # a few bf16 steps of each train mode

Each writes one JSON object to OUT.json (and prints it); gpu_check.sh merges them into its report. On a
GPU the throughput runs are `benchmarks/throughput.py` itself, at the real presets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The GPU check: 10,000 pairs at the 3 mm preset. The CPU dry run: tests/sim/test_export.py's small
# device config (96 px, 1.5 mm, batch 6, mixed stages), so it reuses that program from the compile cache.
GPU_EXPORT = dict(n=10_000, batch=256, shard_size=1000, overrides=["fov=3mm", "stage=mixed"])
CPU_EXPORT = dict(n=12, batch=6, shard_size=12, overrides=["size_px=96", "fov_mm=1.5", "seed=5", "stage=mixed"])
MODES = ("lora", "vision", "full")


def write(out: Path, result: dict) -> None:
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def throughput_tiny(out: Path) -> None:
    """Images/s of the export's renderer at the dry run's small config (the CPU stand-in for
    benchmarks/throughput.py): the same compiled program as the export step and tests/sim/test_export.py,
    so with the persistent compile cache only the first of them compiles."""
    import jax

    from svr_jax import cli
    from svr_jax.commands import export_cmd as export_command
    from svr_jax.export import pipeline
    from svr_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    plan = CPU_EXPORT
    with tempfile.TemporaryDirectory(prefix="gpu-check-tput-") as tmp:
        cfg = cli.compose("export", [f"out={tmp}/x", f"batch={plan['batch']}", *plan["overrides"]])
        job = export_command.parse(cfg)
        dispatch, fetch = pipeline.batch_renderer(job)
        start = time.perf_counter()
        fetch(dispatch(0))
        compile_s = time.perf_counter() - start
        best = float("inf")
        for first in range(plan["batch"], 4 * plan["batch"], plan["batch"]):
            start = time.perf_counter()
            fetch(dispatch(first))
            best = min(best, time.perf_counter() - start)
    device = jax.devices()[0]
    row = dict(batch=plan["batch"], compile_s=round(compile_s, 2), seconds_per_batch=round(best, 4),
               images_per_s=round(plan["batch"] / best, 2))  # fmt: skip
    write(out, dict(preset="cpu dry run: " + " ".join(plan["overrides"]), device=f"{device.platform}:{device.device_kind}",
                    images_per_s=row["images_per_s"], per_batch=[row]))  # fmt: skip


def export(out: Path, export_dir: Path, cpu: bool) -> None:
    """Pairs per second of `svr export` (as benchmarks/export.py measures it: a warm-up export first)."""
    import jax

    from svr_jax import cli
    from svr_jax.runtime import enable_compilation_cache

    enable_compilation_cache()  # svr export enables it too; here for the warm-up's first compile
    plan = CPU_EXPORT if cpu else GPU_EXPORT

    def run(target: Path, n: int) -> float:
        args = ["export", f"n={n}", f"out={target}", f"batch={plan['batch']}", f"shard_size={plan['shard_size']}",
                "llamafactory=false", *plan["overrides"]]  # fmt: skip
        start = time.perf_counter()
        if cli.main(args) != 0:
            raise SystemExit(f"svr {' '.join(args)} failed")
        return time.perf_counter() - start

    warmup = Path(tempfile.mkdtemp(prefix="gpu-check-warmup-"))
    try:
        compile_s = run(warmup / "export", plan["batch"])
    finally:
        shutil.rmtree(warmup, ignore_errors=True)
    seconds = run(export_dir, plan["n"])
    manifest = json.loads((export_dir / "manifest.json").read_text())
    device = jax.devices()[0]
    write(out, dict(
        pairs=manifest["rows"], seconds=round(seconds, 2), pairs_per_s=round(manifest["rows"] / seconds, 2),
        warmup_compile_s=round(compile_s, 1), batch=plan["batch"], overrides=plan["overrides"],
        device=f"{device.platform}:{device.device_kind}", devices=jax.device_count(),
    ))  # fmt: skip


def train(out: Path, export_dir: Path, cpu: bool, steps: int, batch: int) -> None:
    """A few bf16 steps with gradient checkpointing of each mode on the tiny model; time, loss, memory."""
    import torch
    from transformers.utils import is_torchvision_available
    from trl import SFTConfig

    from train_vlm.model import ModelArguments, count_parameters
    from train_vlm.tiny import build_tiny_qwen3_vl
    from train_vlm.train import DataArguments, build_trainer

    cuda = torch.cuda.is_available() and not cpu
    work = Path(tempfile.mkdtemp(prefix="gpu-check-train-"))
    model_dir = build_tiny_qwen3_vl(work / "tiny", seed=0, min_pixels=32 * 32, max_pixels=128 * 128)
    results = {}
    for mode in MODES:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer = build_trainer(
            ModelArguments(model_name_or_path=str(model_dir), train_mode=mode, dtype="bfloat16", local_files_only=True,
                           image_min_pixels=32 * 32, image_max_pixels=128 * 128, lora_r=16, lora_alpha=32),
            DataArguments(train_data=str(export_dir), max_train_records=steps * batch),
            SFTConfig(output_dir=str(work / mode), max_steps=steps, per_device_train_batch_size=batch,
                      learning_rate=1e-4, bf16=True, gradient_checkpointing=True, use_cpu=not cuda,
                      save_strategy="no", report_to="none", max_length=None, dataloader_num_workers=0,
                      disable_tqdm=True, logging_steps=1, seed=0),
        )  # fmt: skip
        start = time.perf_counter()
        state = trainer.train()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        results[mode] = dict(
            steps=trainer.state.global_step, seconds=round(seconds, 2),
            samples_per_s=round(steps * batch / seconds, 2), losses=losses, train_loss=state.training_loss,
            trainable=count_parameters(trainer.model)["trainable"],
            peak_gpu_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            device=str(trainer.model.device),
        )  # fmt: skip
        processor = type(trainer.processing_class).__name__
    shutil.rmtree(work, ignore_errors=True)
    write(out, dict(
        modes=results, processor=processor, torchvision=is_torchvision_available(), bf16=True,
        gradient_checkpointing=True, batch=batch, torch=torch.__version__,
        gpu=torch.cuda.get_device_name(0) if cuda else None,
    ))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("throughput-tiny", "export", "train"))
    parser.add_argument("out", type=Path)
    parser.add_argument("export_dir", type=Path, nargs="?")
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    if args.step == "throughput-tiny":
        throughput_tiny(args.out)
    elif args.step == "export":
        export(args.out, args.export_dir, args.cpu)
    else:
        train(args.out, args.export_dir, args.cpu, args.steps, args.batch)


if __name__ == "__main__":
    main()
