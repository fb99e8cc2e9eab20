"""Make the README's fit figures: docs/img/fit_<fov>_statistics.png and fit_<fov>_synthetic.png.

    python scripts/make_fit_figures.py [--real ../shared/data/octa500] [--fov 3mm 6mm]

For each field: the statistics plots and synthetic samples of `svr fit`'s report, library defaults
against the fitted preset (conf/fov/<fov>.yaml), both at the default variability of `svr generate`. The
real eyes enter only as statistics; the side-by-side with real images (`realism.png`) stays in the
temporary folder, since OCTA-500 may not be redistributed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from svr_jax.realdata import default_octa500_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=default_octa500_dir())
    parser.add_argument("--fov", nargs="+", default=["3mm", "6mm"], choices=["3mm", "6mm"])
    parser.add_argument("--eval-n", type=int, default=48, help="synthetic images per setting (as svr fit's report)")
    parser.add_argument("--seed", type=int, default=1_000_003)
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"make_fit_figures: error: real data folder {str(args.real)!r} does not exist", file=sys.stderr)
        return 2
    import numpy as np

    from svr_jax import config as config_lib
    from svr_jax.fit_report import evaluate, plot_report
    from svr_jax.presets import preset_params
    from svr_jax.runtime import enable_compilation_cache
    from svr_jax.variability import default_variability
    from svr_jax.fit import real_summary
    from svr_jax.realdata import load_folder

    enable_compilation_cache()
    for fov in args.fov:
        cfg, fitted = preset_params(fov)
        real = load_folder(args.real, scan_mm=cfg.field.fov_mm, disease="NORMAL", size_px=cfg.field.size_px, half="fit")
        real_stats, summary = real_summary(real.images, cfg, joint=True)
        job = types.SimpleNamespace(sim=cfg, eval_n=args.eval_n, variability=default_variability())
        before, before_stats = evaluate(job, summary, config_lib.default_params(cfg), args.seed)
        after, after_stats = evaluate(job, summary, fitted, args.seed)
        print(f"{fov}: distance, library defaults {before['total']:.3f} -> fitted {after['total']:.3f}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            # plot_report draws the loss curve too; these figures have no fit run behind them.
            plot_report(Path(tmp), types.SimpleNamespace(losses=np.ones(2), group_losses={}), real.images, real_stats,
                        before_stats, after_stats, cfg)
            for name in ("statistics", "synthetic"):
                shutil.copyfile(Path(tmp) / f"{name}.png", REPO / "docs" / "img" / f"fit_{fov}_{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
