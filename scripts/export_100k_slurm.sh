#!/usr/bin/env bash
# The mission's dataset (100,000 pairs) exported through a SLURM array, with the figures that prove it:
#
#   scripts/export_100k_slurm.sh                          # 100,000 pairs, local single-node cluster
#   N=200 SHARD_SIZE=25 JOBS=2 scripts/export_100k_slurm.sh   # the same path on a small n (a few minutes)
#   SLURM_CONF=/etc/slurm/slurm.conf LAUNCHER=slurm OUT=/shared/octa100k scripts/export_100k_slurm.sh
#
# Without SLURM_CONF it starts a single-node cluster (scripts/local_slurm.py, root + Debian packages:
# `make slurm-packages`) and stops it at the end. It submits `svr export -m` with JOBS array tasks over
# disjoint shard ranges, then prints: wall time, pairs/s, bytes and files on disk, peak memory per task
# (sacct MaxRSS), `svr export verify`, datasets.load_dataset's row count and load time, the card's stage
# and task counts; the last line is one JSON object. Re-running with the same OUT resumes (whole shards
# are kept), so a run cut short is finished by running it again.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
SHARD_SIZE=${SHARD_SIZE:-1000}
BATCH=${BATCH:-16}
JOBS=${JOBS:-2}                   # array tasks (one per CPU core here; one per GPU on a GPU cluster)
SEED=${SEED:-0}
OUT=${OUT:-out/octa${N}}
LAUNCHER=${LAUNCHER:-slurm_cpu}   # svr_jax/conf/hydra/launcher/: slurm (GPU nodes) or slurm_cpu
CPUS_PER_TASK=${CPUS_PER_TASK:-1}
if [ -z "${PYTHON:-}" ]; then if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ -z "${SLURM_CONF:-}" ]; then
  CLUSTER=$(mktemp -d /tmp/svr-slurm-XXXXXX)
  trap '"$PYTHON" scripts/local_slurm.py down "$CLUSTER"; rm -rf "$CLUSTER"' EXIT
  eval "$("$PYTHON" scripts/local_slurm.py up "$CLUSTER" --cpus "$JOBS")"
fi
export SLURM_CONF

SHARDS=$(( (N + SHARD_SIZE - 1) / SHARD_SIZE ))
RANGES=$("$PYTHON" -c "
import math, sys
shards, jobs = $SHARDS, min($JOBS, $SHARDS)
step = math.ceil(shards / jobs)
print(','.join(f'{a}:{min(a + step, shards)}' for a in range(0, shards, step)))")
echo "export: $N pairs, $SHARDS shards of $SHARD_SIZE, ranges $RANGES, out $OUT, launcher $LAUNCHER" >&2

START=$(date +%Y-%m-%dT%H:%M:%S)
T0=$(date +%s%N)
"$PYTHON" -m svr_jax.cli export -m "n=$N" "out=$OUT" "seed=$SEED" "shard_size=$SHARD_SIZE" "batch=$BATCH" \
  "shards=$RANGES" "hydra/launcher=$LAUNCHER" "hydra.launcher.cpus_per_task=$CPUS_PER_TASK" >&2
T1=$(date +%s%N)

T2=$(date +%s%N)
VERIFY=$("$PYTHON" -m svr_jax.cli export verify "out=$OUT" | tail -1)
T3=$(date +%s%N)
# Peak resident memory of each task's job step (the svr process), from SLURM's accounting (one task
# is a plain job <id>, several an array <id>_<k>).
SACCT=$(sacct -n -P -S "$START" -o JobID,State,Elapsed,MaxRSS | grep -E '^[0-9]+(_[0-9]+)?\.0\|' || true)

OUT="$OUT" WALL_NS=$((T1 - T0)) VERIFY_NS=$((T3 - T2)) VERIFY="$VERIFY" SACCT="$SACCT" \
N="$N" JOBS="$JOBS" "$PYTHON" - <<'EOF'
import json, os, subprocess, time
from pathlib import Path

out = Path(os.environ["OUT"])
wall_s = int(os.environ["WALL_NS"]) / 1e9
manifest = json.loads((out / "manifest.json").read_text())


def du(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in files), len(files)


def peak_mib(rss: str) -> float:
    units = {"K": 1 / 1024, "M": 1, "G": 1024}
    return float(rss[:-1]) * units[rss[-1]] if rss and rss[-1] in units else float(rss or 0) / 2**20


tasks = []
for line in os.environ["SACCT"].splitlines():
    job, state, elapsed, rss = line.split("|")
    tasks.append(dict(task=job.split(".")[0], state=state, elapsed=elapsed, peak_rss_mib=round(peak_mib(rss))))

import datasets

t0 = time.perf_counter()
ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
load_s = time.perf_counter() - t0

card = (out / "README.md").read_text() if (out / "README.md").exists() else ""


def table(header: str) -> dict:
    lines = card.split(header, 1)[1].strip().splitlines()[1:] if header in card else []
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        key, value = (c.strip() for c in line.strip("|").split("|"))
        rows[key] = int(value)
    return rows


total, files = du(out)
data_bytes, data_files = du(out / "data")
lf_bytes, lf_files = du(out / "llamafactory")
images = out / "llamafactory" / "images"
per_folder = max((sum(1 for _ in d.iterdir()) for d in [images, *images.glob("*/")] if d.is_dir()), default=0)
figures = dict(
    n=int(os.environ["N"]), rows=manifest["rows"], rejected=manifest["rejected"], shards=len(manifest["shards"]),
    complete=manifest["complete"], jobs=int(os.environ["JOBS"]), wall_s=round(wall_s, 1),
    pairs_per_s=round(manifest["rows"] / wall_s, 2), bytes_on_disk=total, files=files, data_bytes=data_bytes,
    llamafactory_bytes=lf_bytes, llamafactory_files=lf_files, most_files_in_one_folder=per_folder,
    manifest_bytes=(out / "manifest.json").stat().st_size, tasks=tasks,
    verify=os.environ["VERIFY"], verify_s=round(int(os.environ["VERIFY_NS"]) / 1e9, 1),
    load_dataset_rows=len(ds), load_dataset_s=round(load_s, 1),
    card_stages=table("| stage | pairs |"), card_tasks=table("| task | pairs |"),
)
for k, v in figures.items():
    if k != "tasks":
        print(f"{k:>26}: {v}")
for t in tasks:
    print(f"{'task ' + t['task']:>26}: {t['state']}, {t['elapsed']}, peak RSS {t['peak_rss_mib']} MiB")
print(json.dumps(figures))
EOF
