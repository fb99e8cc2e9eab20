"""The package as a user installs it: a wheel built from this tree, installed in a fresh venv, run from
outside the repository, generates images from the fitted presets (package data, not ``conf/`` files
beside a checkout).

The fresh venv reuses the already installed dependencies (jax, hydra, ...) through a ``.pth`` line to
this interpreter's site-packages, so nothing is downloaded; only ``svr_jax`` comes from the wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*args, **kwargs) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    return proc.stdout.strip()


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_generates_the_fitted_presets(tmp_path):
    pytest.importorskip("build")
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "out", "outputs", "build", "*.egg-info", "__pycache__"))
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("svr_jax-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    site = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # dependencies only
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SVR_CONF_DIR")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(venv / "bin" / "python", "-c", "import svr_jax; print(svr_jax.__file__)", cwd=work, env=env)
    assert where.startswith(site), where  # the wheel's copy, not the checkout
    for fov in ("3mm", "6mm"):
        run(venv / "bin" / "svr", "generate", "n=1", "batch=1", f"fov={fov}", f"out=out/{fov}", "contact_sheet=false", cwd=work, env=env)
        assert (work / "out" / fov / "images" / "000000.png").is_file()
        used = json.loads((work / "out" / fov / "generate.json").read_text())["params"]
        from omegaconf import OmegaConf

        fitted = OmegaConf.to_container(OmegaConf.load(REPO / "svr_jax" / "conf" / "fov" / f"{fov}.yaml").params)
        for group, values in fitted.items():
            for name, value in values.items():
                assert used[group][name] == pytest.approx(value, rel=1e-6), (fov, group, name)
