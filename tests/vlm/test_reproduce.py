"""`svr-vlm reproduce` end to end on the tiny model: an export, training, merge, two evaluations, a report."""

import json

import numpy as np
from conftest import write_labelled_folder
from export_writer import fixture_records, make_row, write_export

from train_vlm.cli import main

EYES = [("10301", 3, "NORMAL"), ("10302", 3, "DR"), ("10001", 6, "NORMAL"), ("10002", 6, "DR"), ("10003", 6, "AMD")]


def test_reproduce_with_lora_and_merge(tmp_path):
    """A LoRA run (so the merge step runs) from an existing export; the report holds base and tuned."""
    rng = np.random.default_rng(0)
    export = tmp_path / "export"
    write_export(export, [make_row(record, rng) for record in fixture_records()[:16]], num_shards=1)
    (export / "manifest.json").write_text(json.dumps({"complete": True, "rows": 16}))  # as svr export leaves it
    folder = tmp_path / "octa"
    folder.mkdir()
    write_labelled_folder(folder, EYES)
    run = tmp_path / "run"
    summary = main(
        ["reproduce", "--output_dir", str(run), "--images_root", str(folder), "--export_dir", str(export),
         "--tiny", "true", "--train_overrides", "--train_mode lora --max_steps 2 --per_device_train_batch_size 4",
         "--max_new_tokens", "8", "--n_resamples", "100", "--other_labels", "AMD"]
    )  # fmt: skip
    assert (run / "merged" / "model.safetensors").is_file() and summary["tuned_model"] == str(run / "merged")
    assert (run / "train" / "prompts.json").is_file() and list((run / "train" / "runs").rglob("events.out.tfevents*"))
    assert summary["timings"]["export_s"] == 0.0 and summary["timings"]["merge_s"] > 0
    for name in ("base", "tuned"):
        groups = summary["groups"][name]
        assert groups["pooled"]["n"] == 4 and set(groups) == {"3mm", "6mm", "pooled"}
        assert "balanced_accuracy" in groups["pooled"]["intervals"]
    report = (run / "report.md").read_text()
    assert "| pooled | 4 (2 DR / 2 no DR) |" in report
    assert "base: balanced accuracy" in report and "tuned: balanced accuracy" in report
    assert "| learning_rate | 1e-05 | 1e-05 |" in report and "| AMD | 1 |" in report
