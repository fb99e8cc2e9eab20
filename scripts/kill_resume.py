"""SIGKILL an export at random moments, resume it, and compare with an uninterrupted export of the config.

    python scripts/kill_resume.py                                   # 3 mm, 1,024 pairs, 8 shards, 3 kills
    python scripts/kill_resume.py --n 100000 --shard-size 1000 --batch 256 --kills 5 --root /scratch/kr

The uninterrupted reference and the killed-and-resumed export are written under ``--root`` (default: a
temporary folder, removed afterwards). Each kill lands at a uniformly random time between the first
completed shard and the estimated end. The last printed line is one JSON object; ``identical`` is true
when every shard and the manifest are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(out: Path, args) -> list[str]:
    return [sys.executable, "-m", "svr_jax.cli", "export", f"n={args.n}", f"out={out}", f"seed={args.seed}",
            f"shard_size={args.shard_size}", f"batch={args.batch}", f"fov={args.fov}", f"stage={args.stage}", "card=false"]


def files(out: Path) -> dict[str, bytes]:
    paths = sorted((out / "data").glob("*.parquet")) + [out / "manifest.json"]
    return {p.name: p.read_bytes() for p in paths if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fov", default="3mm")
    parser.add_argument("--stage", default="mixed")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--random-seed", type=int, default=0, help="seeds the kill times")
    args = parser.parse_args()
    rng = random.Random(args.random_seed)
    root = args.root or Path(tempfile.mkdtemp(prefix="svr-kill-resume-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        t0 = time.perf_counter()
        subprocess.run(command(root / "reference", args), check=True, env=env, stdout=subprocess.DEVNULL)
        reference_s = time.perf_counter() - t0
        killed_at = []
        for _ in range(args.kills):
            process = subprocess.Popen(command(root / "killed", args), env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            delay = rng.uniform(0.2, 0.9) * reference_s
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                done = len(list((root / "killed" / "data").glob("*.parquet")))
                killed_at.append(dict(after_s=round(delay, 1), shards_on_disk=done))
        subprocess.run(command(root / "killed", args), check=True, env=env, stdout=subprocess.DEVNULL)
        reference, resumed = files(root / "reference"), files(root / "killed")
        leftovers = [p.name for p in (root / "killed" / "data").iterdir() if p.name.endswith(".tmp")]
        differing = sorted(name for name in reference.keys() | resumed.keys() if reference.get(name) != resumed.get(name))
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(dict(identical=not differing and not leftovers, differing=differing, temporary_files_left=leftovers,
                          kills=killed_at, files_compared=len(reference), reference_s=round(reference_s, 1), n=args.n)))
    if differing or leftovers:
        sys.exit(1)


if __name__ == "__main__":
    main()
