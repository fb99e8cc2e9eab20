"""Images per second of the full pipeline (growth + render + appearance + masks), over batch sizes.

Every image grows its own vasculature from its own key (no graph is reused). Compile time is reported
apart from steady-state time; steady state is the best of several timed calls, each on fresh keys.

    python benchmarks/throughput.py            # batch sizes 1, 8, 32, 64 at the 3 mm preset
    python benchmarks/throughput.py --quick    # one batch size, < 60 s on a 2-core CPU
    python benchmarks/throughput.py --preset 6mm --batches 16 64 256
    python benchmarks/throughput.py --quick --stage mixed   # with the diabetic-retinopathy stage mixture
    python benchmarks/throughput.py --quick --architecture branching   # the earlier fixed-layout trees
    python benchmarks/throughput.py --quick --plain-malloc  # without svr's huge-page malloc (other C libraries)

The last line printed is one JSON object (keys images_per_s, segments_per_image, height, width, batch,
device, hugepage_malloc, compile_s, per_batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

import svr_jax as svr


def measure(cfg, params, batch: int, repeats: int, stage: str = "normal") -> dict:
    run = jax.jit(lambda keys, p: jax.vmap(lambda k: svr.simulate(k, p, cfg, stage))(keys))
    keys = svr.sample_keys(0, jnp.arange(batch))
    t0 = time.perf_counter()
    out = run(keys, params)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for r in range(repeats):
        keys = svr.sample_keys(r + 1, jnp.arange(batch))  # fresh vasculature every call
        t0 = time.perf_counter()
        out = run(keys, params)
        jax.block_until_ready(out.image)
        best = min(best, time.perf_counter() - t0)
    return dict(
        batch=batch,
        compile_s=round(compile_s, 2),
        seconds_per_batch=round(best, 4),
        images_per_s=round(batch / best, 2),
        segments_per_image=int(jnp.mean(out.stats["segments"])),
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3mm", choices=sorted(svr.config.PRESETS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one batch size of 16, two timed calls")
    parser.add_argument("--stage", default="normal", choices=svr.pathology.STAGE_CHOICES,
                        help="disease stage; 'mixed' draws it per image from the stage mixture")
    parser.add_argument("--architecture", choices=("colonisation", "branching"), default=None,
                        help="the trees' growth (GrowthConfig.architecture); default: the preset's")
    parser.add_argument("--plain-malloc", action="store_true", help="without the huge-page malloc that `svr` runs with")
    args = parser.parse_args(argv)
    if argv is None and not args.plain_malloc:  # as `svr generate` runs: huge-page malloc (svr_jax/runtime.py)
        from svr_jax.runtime import reexec_with_hugepage_malloc

        reexec_with_hugepage_malloc(sys.argv)
    if args.quick:
        args.batches, args.repeats = [16], 2
    cfg = svr.preset(args.preset)
    if args.architecture:
        cfg = dataclasses.replace(cfg, growth=dataclasses.replace(cfg.growth, architecture=args.architecture))
    params = svr.default_params(cfg)
    rows = []
    for batch in args.batches:
        row = measure(cfg, params, batch, args.repeats, args.stage)
        rows.append(row)
        print(f"batch {batch:5d}: {row['images_per_s']:8.1f} img/s  (compile {row['compile_s']:.1f} s, "
              f"{row['segments_per_image']} segments/image)", flush=True)
    best = max(rows, key=lambda r: r["images_per_s"])
    device = jax.devices()[0]
    print(json.dumps(dict(
        images_per_s=best["images_per_s"],
        segments_per_image=best["segments_per_image"],
        height=cfg.field.size_px,
        width=cfg.field.size_px,
        batch=best["batch"],
        compile_s=best["compile_s"],
        device=f"{device.platform}:{device.device_kind}",
        hugepage_malloc="glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""),
        preset=args.preset,
        architecture=cfg.growth.architecture,
        stage=args.stage,
        per_batch=rows,
    )))


if __name__ == "__main__":
    main()
