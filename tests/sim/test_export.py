"""`svr export`: loadable shards, identical manifests, byte-identical resume after SIGKILL, verify."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from svr_jax import cli

SMALL = ["size_px=64", "fov_mm=1.0", "shard_size=6", "batch=4", "seed=5", "stage=mixed"]  # the program of test_export_integrity: one compile
N = 18  # three shards


def export(out: Path, *extra: str) -> int:
    return cli.main(["export", f"n={N}", f"out={out}", *SMALL, *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ref"
    assert export(out) == 0
    return out


def shard_bytes(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))}


def test_loads_with_datasets_images_and_messages(reference):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(reference / "data" / "*.parquet"), split="train")
    assert len(ds) == N
    row = ds[0]
    from PIL.Image import Image

    assert isinstance(row["images"][0], Image) and row["images"][0].size == (64, 64)
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][0]["content"][0]["type"] == "image"
    assert set(ds["stage"]) <= {"normal", "mild", "moderate", "severe", "pdr"}
    meta = json.loads(row["metadata"])
    from svr_jax.text.measure import from_dict

    assert from_dict(meta["measured"]).stage == row["stage"]  # the label is the measured grade
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == N and len(manifest["shards"]) == 3


def test_text_of_every_record_checks(reference, capsys):
    assert cli.main(["check-text", f"dir={reference}"]) == 0


def test_llamafactory_view(reference):
    info = json.loads((reference / "llamafactory" / "dataset_info.json").read_text())
    assert info["svr_octa"]["formatting"] == "sharegpt"
    lines = [json.loads(l) for p in sorted((reference / "llamafactory" / "data").glob("*.jsonl")) for l in p.read_text().splitlines()]
    assert len(lines) == N
    for record in lines:
        placeholders = sum(m["content"].count("<image>") for m in record["messages"])
        assert placeholders == len(record["images"]) == 1
        assert (reference / "llamafactory" / record["images"][0]).is_file()


def test_dataset_card(reference):
    card = (reference / "README.md").read_text()
    assert "| stage | pairs |" in card and (reference / "card" / "stages.png").is_file()


def test_same_config_any_shard_order_same_manifest(reference, tmp_path):
    """Shards produced by separate 'workers' in reverse order give the identical manifest."""
    out = tmp_path / "workers"
    assert export(out, "shards=2:3") == 0
    assert export(out, "shards=0:2") == 0
    assert (out / "manifest.json").read_text() == (reference / "manifest.json").read_text()
    assert shard_bytes(out) == shard_bytes(reference)


def test_verify_names_corrupt_shard_and_resume_rebuilds_only_it(reference, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    victim = out / "data" / "train-00001-of-00003.parquet"
    victim.write_bytes(victim.read_bytes()[:-100])  # truncated
    other = out / "data" / "train-00000-of-00003.parquet"
    before = other.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "verify", f"out={out}"])
    assert exit_info.value.code == 1
    assert "train-00001-of-00003.parquet: sha256 mismatch" in capsys.readouterr().out
    assert export(out) == 0
    assert shard_bytes(out) == shard_bytes(reference)
    assert other.stat().st_mtime_ns == before  # nothing else touched
    assert cli.main(["export", "verify", f"out={out}"]) == 0


def test_sigkill_then_resume_is_byte_identical(reference, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "svr_jax.cli", "export", f"n={N}", f"out={out}", *SMALL]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill at a random moment once the first shard is on disk (so the kill lands mid-export).
    deadline = time.time() + 600
    while not list((out / "data").glob("*.parquet")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.2))
    assert process.poll() is None, "the export finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert export(out) == 0
    assert shard_bytes(out) == shard_bytes(reference)
    assert (out / "manifest.json").read_text() == (reference / "manifest.json").read_text()
    assert not list(out.rglob("*.tmp"))


def test_bad_input(tmp_path, capsys):
    assert cli.main(["export", f"out={tmp_path / 'x'}", "shard_size=0"]) == 2
    assert "shard_size must be >= 1" in capsys.readouterr().err
    assert cli.main(["export", "verify", f"out={tmp_path / 'nothing'}"]) == 2
    assert "no export to verify" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_batch_sharded_over_two_devices(reference, tmp_path):
    """jax.sharding over 2 (forced host) devices renders the same dataset: every sample from the same
    key and parameters, the same text, masks and labels. Each device compiles its own half batch, and
    XLA's vectorised CPU math may round the last float bits differently for another array length, so
    measured floats may differ in the 6th digit and a rare pixel by one grey level; bytes are the same
    for the same device layout (see the resume and shard-order tests)."""
    import io

    import numpy as np
    import pyarrow.parquet as pq
    from PIL import Image

    out = tmp_path / "two_devices"
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2")  # keeps make test's flags
    code = (
        "import jax, sys; assert jax.local_device_count() == 2; from svr_jax import cli; "
        f"sys.exit(cli.main({['export', f'n={N}', f'out={out}', *SMALL]!r}))"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)

    def floats_close(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(floats_close(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(floats_close(x, y) for x, y in zip(a, b))
        if isinstance(a, float):
            return abs(a - b) <= 1e-4 * max(1.0, abs(a))
        return a == b

    pixels = differing = 0
    for name in shard_bytes(reference):
        a, b = pq.read_table(out / "data" / name), pq.read_table(reference / "data" / name)
        assert a.column_names == b.column_names
        for column in a.column_names:
            x, y = a[column].to_pylist(), b[column].to_pylist()
            if column == "metadata":
                assert all(floats_close(json.loads(u), json.loads(v)) for u, v in zip(x, y))
            elif column == "images":
                for u, v in zip(x, y):
                    iu, iv = (np.asarray(Image.open(io.BytesIO(im[0]["bytes"])), np.int16) for im in (u, v))
                    assert np.abs(iu - iv).max() <= 1
                    pixels, differing = pixels + iu.size, differing + int(np.sum(iu != iv))
            else:
                assert x == y, column  # conversation, masks, stage, labels: identical
    assert pixels > 0 and differing <= 1e-3 * pixels
