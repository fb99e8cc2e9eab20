"""`svr export` as a Hydra multirun on a real (single-node) SLURM cluster, through hydra-submitit-launcher.

Several array tasks write disjoint shard ranges into one export folder; shards, sidecars, manifest and
LLaMA-Factory view must be byte-identical to one local run of the same n and seed. Then the same with
one task cancelled midway and the multirun submitted again: only the missing shards are made.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
N, SHARD_SIZE = 64, 8  # 8 shards
SMALL = [f"n={N}", f"shard_size={SHARD_SIZE}", "batch=8", "size_px=96", "fov_mm=1.5", "seed=5", "stage=mixed"]
RANGES = "shards=0:3,3:6,6:8"  # three array tasks
SHARDS = [f"train-{k:05d}-of-00008.parquet" for k in range(8)]
TIMEOUT_S = 1200


def svr(out: Path, *extra: str, env=None) -> list[str]:
    return [sys.executable, "-m", "svr_jax.cli", "export", f"out={out}", *SMALL, *extra]


def multirun(out: Path) -> list[str]:
    # One CPU per task, so the three tasks run at once on the test node (4 CPUs declared).
    return svr(out, "-m", RANGES, "hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=30")


def environment(extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def export_files(out: Path) -> dict[str, bytes]:
    """Everything whose bytes the export promises: shards, sidecars, manifest, LLaMA-Factory records."""
    paths = sorted((out / "data").glob("*.parquet")) + sorted((out / "data").glob("*.parquet.json"))
    paths += sorted((out / "llamafactory" / "data").glob("*.jsonl")) + [out / "manifest.json", out / "llamafactory" / "dataset_info.json"]
    return {str(p.relative_to(out)): p.read_bytes() for p in paths if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One local process, no SLURM (also fills the XLA compilation cache the jobs then share)."""
    out = tmp_path_factory.mktemp("local") / "ref"
    subprocess.run(svr(out), check=True, env=environment(), timeout=TIMEOUT_S, capture_output=True)
    return out


def job_logs(out: Path) -> dict[str, str]:
    """submitit's stderr per array task (``<array>_<task>_0_log.err``): the export's progress lines."""
    return {p.name: p.read_text(errors="replace") for p in sorted((out / ".multirun" / ".submitit").rglob("*_log.err"))}


def test_array_writes_one_export_identical_to_a_local_run(slurm, reference, tmp_path):
    out = tmp_path / "array"
    t0 = time.perf_counter()
    result = subprocess.run(multirun(out), env=environment(slurm.env), timeout=TIMEOUT_S, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"\nSLURM array of 3 tasks, {N} pairs: {wall_s:.1f} s")

    assert export_files(out) == export_files(reference)
    assert set(export_files(out)) >= {f"data/{s}" for s in SHARDS} | {"manifest.json"}
    verify = subprocess.run(svr(out, "verify"), env=environment(), capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0 and "verify: 0 problem(s)" in verify.stdout
    # Three distinct SLURM array tasks did the work, each its own range (submitit's per-task logs).
    logs = job_logs(out)
    assert len(logs) == 3, list(logs)
    assert len({name.split("_")[0] for name in logs}) == 1  # one array job
    assert sorted(_shards_made(text) for text in logs.values()) == [(2, 2), (3, 3), (3, 3)]
    accounted = slurm.client("sacct", "-n", "-P", "-X", "-o", "JobID,State").stdout.split()
    assert sum(line.endswith("|COMPLETED") for line in accounted) >= 3
    assert (out / "README.md").is_file()  # the card, written by whichever task completed the export
    assert not list(out.rglob("*.tmp"))


def _shards_made(log: str) -> tuple[int, int]:
    """(shards to make, shards in the range) from the export's progress line 'export a/b shards'."""
    import re

    found = re.findall(r"export (\d+)/(\d+) shards", log)
    assert found, log[-2000:]
    return tuple(int(x) for x in found[-1])


def test_cancelled_task_resubmitted_makes_only_missing_shards(slurm, reference, tmp_path):
    out = tmp_path / "cancelled"
    env = environment(slurm.env)
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(multirun(out), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Cancel task 0 (shards 0..2) once its first shard is whole, while it makes the second.
        sidecar = out / "data" / (SHARDS[0] + ".json")
        deadline = time.monotonic() + TIMEOUT_S
        while not sidecar.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        tasks = dict(line.split() for line in slurm.jobs())
        victim = next((job for job, state in tasks.items() if job.endswith("_0") and state == "RUNNING"), None)
        assert victim is not None and not (out / "data" / (SHARDS[2] + ".json")).exists(), \
            f"task 0 finished before it could be cancelled: {tasks}"
        # kill -9 of the task's job step (the svr process), as a dying node or the OOM killer would: a plain
        # scancel sends SIGTERM, which submitit ignores, and the task may finish in the grace period.
        step = slurm.step_processes(victim)
        assert step, f"no process of {victim}'s job step"
        for pid in step:
            os.kill(pid, signal.SIGKILL)
        assert first.wait(timeout=TIMEOUT_S) != 0  # submitit found the task dead without a result (sacct)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        log.close()
    # The other two tasks run on after the front end gave up; wait for them before resubmitting.
    deadline = time.monotonic() + TIMEOUT_S
    while slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    state = slurm.client("sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", victim).stdout
    assert "CANCELLED" in state or "FAILED" in state, state
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"]
    done = {p.name[: -len(".json")]: p.with_suffix("").stat().st_mtime_ns for p in (out / "data").glob("*.parquet.json")}
    missing = [s for s in SHARDS if s not in done]
    assert missing and set(missing) <= set(SHARDS[1:3]), missing
    verify = subprocess.run(svr(out, "verify"), env=environment(), capture_output=True, text=True, timeout=300)
    assert verify.returncode == 1 and all(f"{s}: missing" in verify.stdout for s in missing)

    second = subprocess.run(multirun(out), env=env, timeout=TIMEOUT_S, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert export_files(out) == export_files(reference)
    # Shards that were whole were not made again: same files (mtime), and the tasks' own counts.
    assert {s: (out / "data" / s).stat().st_mtime_ns for s in done} == done
    latest = {}
    for name, text in job_logs(out).items():
        array, task = (int(x) for x in name.split("_")[:2])  # <array>_<task>_0_log.err
        latest[task] = max(latest.get(task, (-1, None)), (array, _shards_made(text)))
    newest = max(array for array, _ in latest.values())
    assert sorted(counts for array, counts in latest.values() if array == newest) == sorted(
        [(len(missing), 3), (0, 3), (0, 2)])
    verify = subprocess.run(svr(out, "verify"), env=environment(), capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0
    assert not list(out.rglob("*.tmp"))
