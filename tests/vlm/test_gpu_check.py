"""`scripts/gpu_check.sh --cpu`: the GPU check's dry run, so the script cannot rot between GPU loans.

The same steps as on a GPU (JAX throughput, an export's pairs/s, bf16 training steps of each mode) at toy
sizes on the CPU, each in its own process; the report must hold every step and no failure.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--cpu", "--out", str(out), "--wheels", str(tmp_path / "none")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert set(steps) == {"environment", "throughput_3mm", "export", "train"}
    assert report["ok"], {name: step.get("log_tail") for name, step in steps.items() if step.get("failed")}
    assert steps["environment"]["cpu_dry_run"] and steps["environment"]["jax_devices"][0].startswith("cpu")
    assert all(row["images_per_s"] > 0 for row in steps["throughput_3mm"]["per_batch"])
    assert steps["export"]["pairs"] == 12 and steps["export"]["pairs_per_s"] > 0
    train = steps["train"]
    assert set(train["modes"]) == {"lora", "vision", "full"} and train["bf16"] and train["gradient_checkpointing"]
    for mode in train["modes"].values():
        assert mode["steps"] == 2 and all(loss == loss for loss in mode["losses"])  # finite, not NaN
