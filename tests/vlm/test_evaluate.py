"""`evaluate` end to end: a tiny model taught planted answers, then scored on a labelled image folder."""

import csv
import json
import os
from pathlib import Path

import pytest
from conftest import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_model_args, tiny_sft_config, write_labelled_folder
from export_writer import FIXTURE_DIR, conversation, make_row

from train_vlm.evaluate import main as evaluate_main
from train_vlm.prompts import find_prompt_set, generation_prompt, score_prompt

# The real export's prompt set: the planted answers are taught for the prompts evaluate will ask.
PROMPT_SET = find_prompt_set(FIXTURE_DIR)
EVAL_PROMPT, SCORE_PROMPT = generation_prompt(PROMPT_SET), score_prompt(PROMPT_SET)
# id, scan_mm, disease (OCTA-500 labels), the answer the model is taught to give, its Yes/No answer.
PLANTED = [
    ("10301", 3, "NORMAL", "Diagnosis: normal", "No"),  # right
    ("10302", 3, "NORMAL", "Diagnosis: mild NPDR", "No"),  # wrong: DR called
    ("10303", 3, "DR", "Diagnosis: PDR", "Yes"),  # right
    ("10304", 3, "DR", "I cannot tell.", "Yes"),  # unparseable: wrong
    ("10001", 6, "NORMAL", "No signs of diabetic retinopathy.", "No"),  # right, through the negation
    ("10002", 6, "AMD", "Diagnosis: mild NPDR", "Yes"),  # not in DR vs NORMAL; reported apart on request
    ("10003", 6, "DR", "Yes", "Yes"),  # right, Yes/No
    ("10004", 6, "DR", "**Diagnosis**: Normal", "Yes"),  # wrong: DR missed (markdown read)
]
HEADLINE = [row for row in PLANTED if row[2] in ("NORMAL", "DR")]
# By hand (DR vs NORMAL). 3 mm: no_dr 1/2, dr 1/2 -> 0.5.  6 mm: no_dr 1/1, dr 1/2 -> 0.75.
# Pooled: no_dr 2/3, dr 2/4 -> 7/12; confusion [[2, 1, 0], [1, 2, 1]].
EXPECTED_BALANCED_ACCURACY = {"3mm": 0.5, "6mm": 0.75, "pooled": 7 / 12}


def _planted_records(pngs: dict[str, bytes]) -> list[dict]:
    """Rows (export schema) that teach the answers above for exactly these images and prompts."""
    rows = []
    for image_id, scan_mm, disease, answer, yes_no in PLANTED:
        for task, prompt, reply in [("reasoning", EVAL_PROMPT, answer), ("dr_yes_no", SCORE_PROMPT, yes_no)]:
            record = dict(
                id=f"{image_id}-{task}", task=task, stage="normal", label_dr=int(disease == "DR"),
                fov_mm=float(scan_mm), messages=conversation(prompt, reply),
            )  # fmt: skip
            rows.append(make_row(record, None, image=pngs[image_id]))
    return rows


@pytest.fixture(scope="module")
def planted_model(tiny_model_dir, tmp_path_factory):
    """The tiny model fully fine-tuned to give the planted answers; returns (model_dir, folder)."""
    from export_writer import write_export

    from train_vlm.train import DataArguments, train

    folder = tmp_path_factory.mktemp("labelled_folder")
    records = _planted_records(write_labelled_folder(folder, PLANTED))
    export = tmp_path_factory.mktemp("planted_export")
    write_export(export, records, num_shards=1)  # with the real export's prompts.json
    model_dir = tmp_path_factory.mktemp("planted_model")
    train(
        tiny_model_args(tiny_model_dir, train_mode="full"),
        DataArguments(train_data=str(export)),
        tiny_sft_config(model_dir, max_steps=60, learning_rate=3e-3),
    )
    return model_dir, folder


def _run_evaluate(model_dir, folder, output_dir, *extra):
    return evaluate_main(
        ["--model", str(model_dir), "--images_root", str(folder), "--output_dir", str(output_dir),
         "--dtype", "float32", "--device", "cpu", "--batch_size", "3", "--n_resamples", "200",
         "--max_new_tokens", "16", "--local_files_only", "true",
         "--image_min_pixels", str(TINY_MIN_PIXELS), "--image_max_pixels", str(TINY_MAX_PIXELS), *extra]
    )  # fmt: skip


def test_evaluate_planted_predictions(planted_model, tmp_path):
    model_dir, folder = planted_model
    assert (model_dir / "prompts.json").is_file()  # train left the export's prompt set with the model
    metrics = _run_evaluate(model_dir, folder, tmp_path)
    assert metrics["prompts"]["generation"] == EVAL_PROMPT and metrics["prompts"]["score"] == SCORE_PROMPT

    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [row[0] for row in HEADLINE]  # AMD is not evaluated by default
    assert [p["answer"] for p in predictions] == [row[3] for row in HEADLINE]  # batched generation, 3 per batch
    assert [p["predicted_class"] for p in predictions] == ["no_dr", "dr", "dr", None, "no_dr", "dr", "no_dr"]
    assert json.loads((tmp_path / "metrics.json").read_text())["groups"] == metrics["groups"]

    groups = metrics["groups"]
    assert set(groups) == {"3mm", "6mm", "pooled"}
    for group, expected in EXPECTED_BALANCED_ACCURACY.items():
        assert groups[group]["balanced_accuracy"] == pytest.approx(expected)
        assert groups[group]["auc"] == pytest.approx(1.0)  # Yes exactly for the DR eyes
        interval = groups[group]["intervals"]["balanced_accuracy"]
        assert interval["low"] <= expected <= interval["high"] and interval["confidence"] == 0.95
    assert groups["pooled"]["per_class_recall"] == {"no_dr": pytest.approx(2 / 3), "dr": pytest.approx(0.5)}
    assert groups["pooled"]["confusion_matrix"]["counts"] == [[2, 1, 0], [1, 2, 1]]
    assert groups["3mm"]["n_unparseable"] == 1 and groups["6mm"]["n_unparseable"] == 0
    assert metrics["unparseable"] == [{"id": "10304", "fov_mm": 3.0, "label": "DR", "answer": "I cannot tell."}]
    assert metrics["other_labels"] == {}
    scores = {p["id"]: p["score_dr"] for p in predictions}
    assert all((scores[image_id] > 0.5) == (yes_no == "Yes") for image_id, *_, yes_no in HEADLINE)
    report = (tmp_path / "report.md").read_text()
    assert "| pooled | 7 (4 DR / 3 no DR) | 0.583 [" in report and "`10304` (DR, 3 mm): I cannot tell." in report


def test_evaluate_other_labels_apart_and_no_score(planted_model, tmp_path):
    model_dir, folder = planted_model
    metrics = _run_evaluate(model_dir, folder, tmp_path, "--other_labels", "AMD", "--score_prompt", "")
    pooled = metrics["groups"]["pooled"]
    assert pooled["n"] == 7 and "auc" not in pooled and "auc" not in pooled["intervals"]
    assert pooled["balanced_accuracy"] == pytest.approx(7 / 12)  # the AMD eye stays out of the headline
    assert metrics["other_labels"]["AMD"]["n"] == 1 and metrics["other_labels"]["AMD"]["called_dr"] == 1
    assert "| AMD | 1 | 1 (100 %) |" in (tmp_path / "report.md").read_text()


def test_evaluate_names_a_missing_image(planted_model, tmp_path):
    model_dir, folder = planted_model
    labels = (folder / "labels.csv").read_text().replace("OCTA_3mm/images/10301.png", "OCTA_3mm/images/nope.png")
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        _run_evaluate(model_dir, folder, tmp_path / "out", "--labels_csv", str(tmp_path / "labels.csv"))


def test_evaluate_a_lora_adapter_folder(tiny_model_dir, export_dir, tmp_path):
    """An adapter folder is recognised and evaluated on top of its base (answers unchecked: untrained)."""
    from train_vlm.train import DataArguments, train

    adapter_dir = tmp_path / "adapter"
    train(
        tiny_model_args(tiny_model_dir, train_mode="lora"),
        DataArguments(train_data=str(export_dir)),
        tiny_sft_config(adapter_dir, max_steps=1, learning_rate=1e-3),
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    write_labelled_folder(folder, PLANTED)
    metrics = _run_evaluate(adapter_dir, folder, tmp_path / "eval", "--max_new_tokens", "4", "--other_labels", "all")
    assert metrics["groups"]["pooled"]["n"] == len(HEADLINE) and metrics["other_labels"]["AMD"]["n"] == 1
    assert metrics["prompts"]["generation"] == EVAL_PROMPT
    assert metrics["config"]["model"] == str(adapter_dir)


def _octa500_root() -> Path:
    return Path(os.environ.get("OCTA500_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "octa500"))


@pytest.mark.skipif(not (_octa500_root() / "labels.csv").is_file(), reason="OCTA-500 folder absent")
def test_evaluate_runs_on_real_octa500(tiny_model_dir, tmp_path):
    """The real folder's shape (3 mm 304 px and 6 mm 400 px scans): 3 eyes of each, tiny untrained model."""
    root = _octa500_root()
    with (root / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    headline = [row for row in rows if row["disease"] in ("NORMAL", "DR")]
    subset = [row for row in headline if row["scan_mm"] == "3"][:3] + [row for row in headline if row["scan_mm"] == "6"][:3]
    labels_csv = tmp_path / "labels.csv"  # a subset of the rows; the images stay where they are
    with labels_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(subset)
    metrics = _run_evaluate(tiny_model_dir, root, tmp_path / "eval", "--labels_csv", str(labels_csv),
                            "--max_new_tokens", "4")  # fmt: skip
    groups = metrics["groups"]
    assert groups["3mm"]["n"] == 3 and groups["6mm"]["n"] == 3 and groups["pooled"]["n"] == 6
    # Whatever the untrained model says, every answer is either parsed or listed as unparseable.
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(metrics["unparseable"]) == sum(p["predicted_class"] is None for p in predictions)
    assert all(0.0 <= p["score_dr"] <= 1.0 for p in predictions)
