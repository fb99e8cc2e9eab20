"""`svr generate`: config composition, outputs, and one-line errors with no partial output."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from svr_jax import cli

SMALL = ["size_px=64", "fov_mm=1.0", "batch=4"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (cli.conf_dir() / group).glob("*.yaml"))


def test_every_config_group_option_composes():
    groups = [p.name for p in cli.conf_dir().iterdir() if p.is_dir() and p.name != "hydra"]
    assert "fov" in groups
    for command in cli.COMMANDS:
        for group in groups:
            for option in group_options(group):
                defaults = (cli.conf_dir() / f"{command}.yaml").read_text()
                if f"- {group}:" not in defaults:
                    continue
                cfg = cli.compose(command, [f"{group}={option}"])
                assert cfg[group].name == option


def test_generate_writes_images_masks_metadata_and_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["generate", "n=5", f"out={out}", "seed=3", *SMALL]) == 0
    images = sorted((out / "images").glob("*.png"))
    assert [p.name for p in images] == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(images[0]).size == (64, 64)
    masks = sorted(p.name for p in (out / "masks").glob("000004_*.png"))
    assert masks == sorted(f"000004_{m}.png" for m in ("vessel", "artery", "vein", "capillary", "large_vessel", "faz"))
    vessel = np.asarray(Image.open(out / "masks" / "000004_vessel.png"))
    assert set(np.unique(vessel)) <= {0, 255} and (vessel > 0).mean() > 0.05
    import json

    meta = json.loads((out / "meta" / "000002.json").read_text())
    assert meta["index"] == 2 and meta["seed"] == 3 and meta["laterality"] in ("OD", "OS")
    assert meta["measured"]["segments"] > 100 and 0 < meta["measured"]["image_mean"] < 1
    assert (out / "contact_sheet.png").exists()
    # By default each sample draws its parameters around the preset, at the scale the presets are fitted
    # at; the benchmarks read the same default.
    from svr_jax.variability import default_variability

    assert json.loads((out / "generate.json").read_text())["variability"] == default_variability() == 0.3
    # export and fit set the same default in their own files (fit: the presets are fitted at it).
    assert [cli.compose(c, [])["variability"] for c in ("export", "fit")] == [default_variability()] * 2
    # The fit's joint term: the same shrinkage in its yaml, its schema and the library.
    from svr_jax.commands.fit import FitSchema
    from svr_jax.stats import JOINT_SHRINKAGE

    assert cli.compose("fit", [])["joint_shrinkage"] == FitSchema().joint_shrinkage == JOINT_SHRINKAGE


def test_generate_is_reproducible_per_index(tmp_path):
    """Sample i is the same whether generated in a run of 5 or alone, at the same ``batch`` (another batch
    size rounds the last float bit differently: docs/design/export-integrity.md, "Determinism")."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["generate", "n=5", f"out={a}", *SMALL]) == 0
    assert cli.main(["generate", "n=1", "first_index=3", f"out={b}", *SMALL]) == 0
    assert (a / "images" / "000003.png").read_bytes() == (b / "images" / "000003.png").read_bytes()


def test_variability_is_per_sample_and_reproducible(tmp_path):
    """variability=1: sample i draws its own parameters from its key, whatever the batch layout; the
    images differ from the preset's and the config hash records the setting."""
    import json

    a, b, plain = tmp_path / "a", tmp_path / "b", tmp_path / "plain"
    assert cli.main(["generate", "n=4", f"out={a}", "variability=1.0", *SMALL]) == 0
    assert cli.main(["generate", "n=1", "first_index=2", f"out={b}", "variability=1.0", *SMALL]) == 0
    assert cli.main(["generate", "n=4", f"out={plain}", *SMALL]) == 0
    assert (a / "images" / "000002.png").read_bytes() == (b / "images" / "000002.png").read_bytes()
    assert (a / "images" / "000002.png").read_bytes() != (plain / "images" / "000002.png").read_bytes()
    means = [np.asarray(Image.open(a / "images" / f"{i:06d}.png"), np.float32).mean() for i in range(4)]
    plain_means = [np.asarray(Image.open(plain / "images" / f"{i:06d}.png"), np.float32).mean() for i in range(4)]
    assert np.std(means) > np.std(plain_means)  # brightness spreads between samples
    hashes = {json.loads((d / "meta" / "000000.json").read_text()).get("config_hash") for d in (a, plain)}
    assert len(hashes) == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ("bogus=1", "Could not override 'bogus'"),
        ("size_px=-3", "size_px must be > 0"),
        ("fov_mm=0", "fov_mm must be > 0"),
        ("n=0", "n must be >= 1"),
        ("fov=9mm", "Could not find 'fov/9mm'"),
        ("params.appearance.gainz=2", "Could not override 'params.appearance.gainz'"),
        ("variability=-1", "variability must be >= 0"),
        ("architecture=trees", "growth.architecture must be 'colonisation' or 'branching'"),
    ],
)
def test_bad_input_one_error_line_no_output(tmp_path, capsys, override, message):
    out = tmp_path / "never"
    assert cli.main(["generate", f"out={out}", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svr generate: error:") and message in err[0], err
    assert not out.exists()


def test_unwritable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["generate", f"out={blocker / 'sub'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be created" in err[0]
    assert cli.main(["generate", "out=/proc/svr-test/out"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_unknown_command(capsys):
    assert cli.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunable")
def test_program_reexecutes_once_with_hugepage_malloc():
    """`svr` (run as a program) restarts itself with glibc's huge-page malloc setting, exactly once,
    keeping other tunables and the arguments; called from Python (the tests) it never re-executes."""
    from svr_jax.runtime import HUGEPAGE_MALLOC

    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "SVR_NO_REEXEC")}
    env["GLIBC_TUNABLES"] = "glibc.malloc.check=0"
    probe = ("import os, sys; from svr_jax.runtime import reexec_with_hugepage_malloc as r; print('run', sys.argv[1:]); "
             "r(['-c', 'import os, sys; print(os.environ[\"GLIBC_TUNABLES\"], sys.argv[1:])', 'x=1'])")
    out = subprocess.run([sys.executable, "-c", probe, "a"], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["run ['a']", f"glibc.malloc.check=0:{HUGEPAGE_MALLOC} ['x=1']"]
    usage = subprocess.run([sys.executable, "-m", "svr_jax.cli", "--help"], env=env, capture_output=True, text=True, check=True)
    assert usage.stdout.startswith("usage: svr")


@pytest.mark.parametrize("command", ["generate", "export", "check-text"])
def test_architecture_picks_the_vessel_trees_and_changes_the_identity(command):
    """`architecture=colonisation` reaches the static config of every command that simulates; it is part
    of the config hash (an export folder of one architecture refuses the other)."""
    import importlib

    module = importlib.import_module(cli.COMMANDS[command])
    jobs = {arch: module.parse(cli.compose(command, [] if arch is None else [f"architecture={arch}"])) for arch in (None, "colonisation")}
    sims = {arch: (job.base if command == "export" else job).sim for arch, job in jobs.items()}
    assert sims[None].growth.architecture == "branching" and sims["colonisation"].growth.architecture == "colonisation"
    if command != "check-text":
        hashes = {(job.base if command == "export" else job).config_hash() for job in jobs.values()}
        assert len(hashes) == 2
