"""End-to-end export throughput: render + measure + text + PNG encode + Parquet write, pairs per second.

    python benchmarks/export.py            # 3 mm (304 x 304), mixed stages, 2 shards of 128 pairs
    python benchmarks/export.py --quick    # 128 pairs, < 60 s on a 2-core CPU once compiled
    python benchmarks/export.py --n 100000 --shard-size 1000 --batch 256 --out /scratch/octa100k   # GPU

Compile time is reported apart: the timed export starts after a warm-up export of one batch with the
same shapes. The last line printed is one JSON object with ``pairs_per_s``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import jax

from svr_jax import cli


def run_export(out: Path, n: int, shard_size: int, batch: int, fov: str, stage: str, masks: bool, variability: float | None = None) -> None:
    args = ["export", f"n={n}", f"out={out}", f"shard_size={shard_size}", f"batch={batch}", f"fov={fov}", f"stage={stage}",
            f"masks={str(masks).lower()}", "card=false"] + ([] if variability is None else [f"variability={variability}"])
    if cli.main(args) != 0:
        raise SystemExit("export failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fov", default="3mm")
    parser.add_argument("--stage", default="mixed")
    parser.add_argument("--no-masks", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="keep the export here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variability", type=float, default=None, help="per-sample parameter spread (default: svr export's)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.shard_size = 128, 64
    root = Path(tempfile.mkdtemp(prefix="svr-export-bench-"))
    try:
        t0 = time.perf_counter()
        run_export(root / "warmup", args.batch, args.batch, args.batch, args.fov, args.stage, not args.no_masks, args.variability)
        compile_s = time.perf_counter() - t0
        out = args.out or root / "timed"
        t0 = time.perf_counter()
        run_export(out, args.n, args.shard_size, args.batch, args.fov, args.stage, not args.no_masks, args.variability)
        seconds = time.perf_counter() - t0
        manifest = json.loads((out / "manifest.json").read_text())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    device = jax.devices()[0]
    print(json.dumps(dict(
        pairs_per_s=round(manifest["rows"] / seconds, 2), pairs=manifest["rows"], seconds=round(seconds, 1),
        warmup_compile_s=round(compile_s, 1), batch=args.batch, fov=args.fov, stage=args.stage, masks=not args.no_masks,
        variability=manifest["variability"],
        device=f"{device.platform}:{device.device_kind}", devices=jax.device_count(),
    )))


if __name__ == "__main__":
    main()
