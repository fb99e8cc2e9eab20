"""The space-colonisation growth's speed in the whole pipeline, against its own plain formulas and the branching trees.

Three variants of ``svr.simulate`` (batch 16) are compiled in one process and timed in turn on the same fresh
keys, so machine load falls on all three alike: colonisation (fast paths), colonisation with
``grow_colonised(reference=True)`` (the plain formulas: the growth before its fast paths), and branching.
Also checks that the fast and the reference growth draw the same images and masks.

    python benchmarks/colonisation_speed.py --preset 3mm --repeats 8

The last line printed is one JSON object (images_per_s_median, ratio_colonisation_to_branching, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import svr_jax as svr
from svr_jax import colonisation

BATCH = 16


def compiled(preset: str, architecture: str, reference: bool):
    cfg = svr.preset(preset)
    cfg = dataclasses.replace(cfg, growth=dataclasses.replace(cfg.growth, architecture=architecture))
    params = svr.default_params(cfg)
    fast = colonisation.grow_colonised
    # simulate() has no switch for the oracle: swap it in while this variant is traced and compiled.
    colonisation.grow_colonised = functools.partial(fast, reference=reference)
    try:
        run = jax.jit(jax.vmap(lambda k: svr.simulate(k, params, cfg)))
        out = jax.block_until_ready(run(svr.sample_keys(0, jnp.arange(BATCH))))
    finally:
        colonisation.grow_colonised = fast
    return run, out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3mm", choices=sorted(svr.config.PRESETS))
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)
    variants = {
        "colonisation": compiled(args.preset, "colonisation", False),
        "colonisation_reference": compiled(args.preset, "colonisation", True),
        "branching": compiled(args.preset, "branching", False),
    }
    fast, ref = variants["colonisation"][1], variants["colonisation_reference"][1]
    seconds = {name: [] for name in variants}
    for r in range(args.repeats):
        keys = svr.sample_keys(r + 1, jnp.arange(BATCH))  # fresh vasculature every round
        for name, (run, _) in variants.items():
            t0 = time.perf_counter()
            jax.block_until_ready(run(keys).image)
            seconds[name].append(time.perf_counter() - t0)
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    print(json.dumps(dict(
        preset=args.preset,
        batch=BATCH,
        repeats=args.repeats,
        images_per_s_median={name: round(BATCH / s, 2) for name, s in median.items()},
        images_per_s_best={name: round(BATCH / min(s), 2) for name, s in seconds.items()},
        ratio_colonisation_to_branching=round(median["branching"] / median["colonisation"], 3),
        ratio_reference_to_branching=round(median["branching"] / median["colonisation_reference"], 3),
        mask_pixels_differing_fast_vs_reference={k: float(jnp.mean(fast.masks[k] != ref.masks[k])) for k in fast.masks},
        image_max_abs_diff=float(jnp.max(jnp.abs(fast.image - ref.image))),
    )))


if __name__ == "__main__":
    main()
