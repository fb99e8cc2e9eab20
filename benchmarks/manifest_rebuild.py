"""Cost of rebuilding ``manifest.json`` from per-shard sidecars, as a function of the shard count.

    python benchmarks/manifest_rebuild.py                      # 10 .. 10,000 shards, synthetic sidecars
    python benchmarks/manifest_rebuild.py --shards 782 --root /shared/scratch   # on the cluster's file system

`svr export` rebuilds the manifest after every shard (and re-reads the sidecars once more to detect a
concurrent writer), so an export of S shards costs about S/2 rebuilds of the average size in total:
quadratic in S. Sidecars are synthetic (the rebuild reads only them). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    from svr_jax import cli
    from svr_jax.commands import export_cmd
    from svr_jax.export import pipeline as ex
    from svr_jax.export import shards as shard_lib
    from svr_jax.io import write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[10, 100, 782, 1000, 3125, 10000])
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="folder on the file system to measure (default: /tmp)")
    args = parser.parse_args()
    results = []
    for count in args.shards:
        root = Path(tempfile.mkdtemp(prefix="svr-manifest-", dir=args.root))
        try:
            n = count * args.shard_size
            job = export_cmd.parse(cli.compose("export", [f"out={root}", f"n={n}", f"shard_size={args.shard_size}"]))
            plan = shard_lib.plan(n, args.shard_size)
            (root / "data").mkdir()
            for shard in plan:
                stages = {"normal": 60, "mild": 20, "moderate": 20, "severe": 14, "pdr": 14}
                entry = dict(name=shard.name, start=shard.start, stop=shard.stop, rows=128, rejected=0,
                             sha256="0" * 64, stages=stages)
                write_json(root / "data" / (shard.name + ".json"), entry)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ex.write_manifest(job, plan)
                times.append(time.perf_counter() - t0)
            rebuild_s = min(times)
            size = (root / "manifest.json").stat().st_size
            # Over a whole export: the rebuild after shard k reads k sidecars (twice), so ~S/2 full rebuilds.
            results.append(dict(shards=count, pairs=n, rebuild_s=round(rebuild_s, 4), manifest_bytes=size,
                                whole_export_s=round(rebuild_s * (count + 1) / 2, 1)))
            print(f"{count:6d} shards: rebuild {rebuild_s * 1000:8.1f} ms, manifest {size / 1024:8.1f} KiB, "
                  f"all rebuilds of one export ~{rebuild_s * (count + 1) / 2:7.1f} s")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(dict(benchmark="manifest_rebuild", shard_size=args.shard_size, results=results)))


if __name__ == "__main__":
    main()
