#!/usr/bin/env bash
# One check of a lent GPU machine (H100 / H200 with torch, JAX, peft, transformers and accelerate installed,
# no internet), in under 8 minutes, written to one JSON report:
#   1. JAX throughput (images/s) at the 3 mm and 6 mm presets, batch sizes 64 and 256 (benchmarks/throughput.py);
#   2. pairs/s of a 10,000-pair `svr export` (3 mm, mixed stages), its compile timed apart;
#   3. a few bf16 training steps with gradient checkpointing of each mode (lora, vision, full) on the tiny
#      Qwen3-VL, with the stock AutoProcessor when torchvision is there (it is on the GPU image).
# Each step runs in its own process under its own time limit; a step that fails or runs out of time is
# recorded as such and the others still run.
#
#   scripts/gpu_check.sh --download-wheels     # here, with PyPI: the wheels the GPU image lacks, into .whl/
#   scripts/gpu_check.sh [--out FILE]          # there: installs .whl/ into a private folder, then measures
#   scripts/gpu_check.sh --cpu [--out FILE]    # anywhere: the same steps at toy sizes on the CPU (a dry run)
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="gpu_check.json"
CPU=0
WHEELS="$REPO/.whl"
# What the GPU image lacks (or has at another version) of the pinned extras; versions as in pyproject.toml.
WHEEL_PINS=(trl==1.16.0 datasets==5.0.1 transformers==5.18.0 dill==0.4.1 multiprocess==0.70.19
            hydra-core==1.3.8 omegaconf==2.3.1)

download_wheels() {
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "${WHEEL_PINS[@]}" || exit 1
    # antlr4-python3-runtime (hydra's parser) is published as a source archive only: build its pure wheel.
    "$PYTHON" -m pip wheel --no-deps -w "$WHEELS" antlr4-python3-runtime==4.9.3 || exit 1
    ls -la "$WHEELS"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) CPU=1 ;;
        --out) OUT="$2"; shift ;;
        --wheels) WHEELS="$2"; shift ;;
        --download-wheels) download_wheels; exit 0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

WORK="$(mktemp -d -t gpu-check-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$WHEELS"/*.whl \
        || { echo "gpu_check.sh: installing $WHEELS failed" >&2; exit 1; }
    export PYTHONPATH="$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME="$WORK/hf_home"
if [ "$CPU" = 1 ]; then
    # One thread per process: on a shared or small CPU, torch's thread pools otherwise spin against each other.
    export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    LIMIT_ENV=240 LIMIT_THROUGHPUT=240 LIMIT_EXPORT=300 LIMIT_TRAIN=300
else
    # Sum 450 s, plus start-up, inside the 8 minutes.
    LIMIT_ENV=30 LIMIT_THROUGHPUT=100 LIMIT_EXPORT=150 LIMIT_TRAIN=80
fi
cd "$REPO" || exit 1
START=$(date +%s)

# step NAME LIMIT_S COMMAND...: runs COMMAND; its last JSON line becomes $WORK/NAME.json, else a failure record.
step() {
    local name="$1" limit="$2"; shift 2
    local t0 status
    t0=$(date +%s)
    echo "== $name (limit ${limit}s): $*" >&2
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    status=$?
    tail -n 3 "$WORK/$name.log" >&2
    "$PYTHON" - "$name" "$status" "$limit" "$WORK/$name.log" >"$WORK/$name.json" <<'EOF'
import json, sys
name, status, limit, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = open(log, errors="replace").read()
result = None
for line in reversed(text.splitlines()):
    try:
        result = json.loads(line)
    except ValueError:
        continue
    if isinstance(result, dict):
        break
    result = None
if status != 0 or result is None:
    result = {"failed": True, "timed_out": status in (124, 137), "exit_status": status, "limit_s": limit,
              "log_tail": text[-2000:]}
print(json.dumps(result))
EOF
    echo "$(( $(date +%s) - t0 ))" >"$WORK/$name.seconds"
}

step environment "$LIMIT_ENV" "$PYTHON" - "$CPU" <<'EOF'
import importlib, json, sys
versions = {}
for name in ("torch", "torchvision", "jax", "transformers", "trl", "peft", "accelerate", "datasets", "hydra", "tensorboard"):
    try:
        versions[name] = importlib.import_module(name).__version__
    except Exception as error:  # absent or broken: say which
        versions[name] = f"unavailable: {type(error).__name__}"
import torch
import jax
print(json.dumps({"cpu_dry_run": sys.argv[1] == "1", "versions": versions,
                  "torch_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                  "jax_devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()]}))
EOF
if [ "$CPU" = 1 ]; then
    step throughput_3mm "$LIMIT_THROUGHPUT" "$PYTHON" scripts/gpu_check.py throughput-tiny "$WORK/tput.json"
    step export "$LIMIT_EXPORT" "$PYTHON" scripts/gpu_check.py export "$WORK/export.json" "$WORK/export" --cpu
    step train "$LIMIT_TRAIN" "$PYTHON" scripts/gpu_check.py train "$WORK/train.json" "$WORK/export" --cpu --steps 2 --batch 2
else
    step throughput_3mm "$LIMIT_THROUGHPUT" "$PYTHON" benchmarks/throughput.py --preset 3mm --batches 64 256 --repeats 3
    step throughput_6mm "$LIMIT_THROUGHPUT" "$PYTHON" benchmarks/throughput.py --preset 6mm --batches 64 256 --repeats 3
    step export "$LIMIT_EXPORT" "$PYTHON" scripts/gpu_check.py export "$WORK/export.json" "$WORK/export"
    step train "$LIMIT_TRAIN" "$PYTHON" scripts/gpu_check.py train "$WORK/train.json" "$WORK/export" --steps 3 --batch 8
fi

"$PYTHON" - "$WORK" "$OUT" "$START" <<'EOF'
import glob, json, os, sys, time
work, out, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
report = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "wall_s": int(time.time()) - start, "steps": {}}
for path in sorted(glob.glob(os.path.join(work, "*.seconds"))):
    name = os.path.basename(path)[: -len(".seconds")]
    result = json.load(open(os.path.join(work, name + ".json")))
    result["step_wall_s"] = int(open(path).read())
    report["steps"][name] = result
report["ok"] = not any(step.get("failed") for step in report["steps"].values())
open(out, "w").write(json.dumps(report, indent=1) + "\n")
print(json.dumps(report))
EOF
