"""Time of one fit gradient step (simulate a batch, statistics, distance, value_and_grad, Adam).

    python benchmarks/fit.py --fov 3mm --batch 16 --steps 5      # compile + 5 timed steps
    python benchmarks/fit.py --quick                              # batch 4 on a 128 px field

The real statistics come from ``--real DIR`` (default ``$SVR_OCTA500`` or ../shared/data/octa500) when
it exists, otherwise from synthetic images (the time does not depend on them). The last printed line
is one JSON object with ``step_seconds`` (median over the timed steps), ``compile_seconds`` and
``projected_fit_minutes`` for ``--project-steps`` steps (default 300) plus compilation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from svr_jax.config import PRESETS
    from svr_jax.realdata import default_octa500_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fov", default="3mm", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first (compiling) one")
    parser.add_argument("--project-steps", type=int, default=300)
    parser.add_argument("--real", type=Path, default=default_octa500_dir())
    parser.add_argument("--quick", action="store_true", help="batch 4, 128 px field, 3 timed steps")
    args = parser.parse_args(argv)
    if argv is None:  # as `svr fit` runs: huge-page malloc (svr_jax/runtime.py)
        from svr_jax.runtime import reexec_with_hugepage_malloc

        reexec_with_hugepage_malloc(sys.argv)

    import jax
    import numpy as np

    from svr_jax import fit as fit_lib
    from svr_jax.presets import preset_params
    from svr_jax.variability import default_variability
    from svr_jax.realdata import load_folder

    cfg, params = preset_params(args.fov)  # `svr fit` starts from the preset (conf/fov/<fov>.yaml)
    batch, steps = args.batch, args.steps
    if args.quick:
        cfg = dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, size_px=128, fov_mm=cfg.field.fov_mm * 128 / cfg.field.size_px))
        batch, steps = 4, 3
    variability = default_variability()  # what `svr fit` does by default: each image draws its parameters
    if (args.real / "labels.csv").is_file() and not args.quick:
        images = load_folder(args.real, scan_mm=cfg.field.fov_mm, disease="NORMAL", size_px=cfg.field.size_px, limit=32, half="fit").images
        source = str(args.real)
    else:
        images = fit_lib.simulate_images(params, cfg, n=16, seed=12345)
        source = "synthetic"
    _, real = fit_lib.real_summary(images, cfg)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        result = fit_lib.fit(cfg, params, real, steps=steps + 1, batch=batch, checkpoint_dir=Path(tmp) / "ck",
                             checkpoint_every=10_000, progress=False, variability=variability,
                             callback=lambda done, loss: times.append(time.perf_counter()))
    compile_s = result.seconds - (times[-1] - times[0])
    step_s = float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    out = dict(
        fov=args.fov, size_px=cfg.field.size_px, batch=batch, variability=variability, timed_steps=steps, step_seconds=step_s,
        compile_seconds=compile_s, projected_fit_minutes=(compile_s + args.project_steps * step_s) / 60.0,
        project_steps=args.project_steps, real=source, backend=jax.default_backend(), cpu_count=os.cpu_count(),
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    print(f"{args.fov}: {step_s:.2f} s per gradient step (batch {batch}), compile {compile_s:.0f} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
