"""Grounded text: every claim is measured, parsed back and checked; planted errors are caught."""

import dataclasses
import json
import re

import numpy as np
import pytest

from svr_jax import cli
from svr_jax.text import check, measure, reasoning, tasks, templates
from svr_jax.text.measure import Lesion, Measured
from svr_jax.text.paraphrase import Paraphraser
from train_vlm.answers import parse_answer

N_SAMPLES = 48  # = SMALL_BATCH of conftest.py: the disease program test_pathology runs too (one compile)


@pytest.fixture(scope="module")
def measured(small_cfg, small_params):
    """(measured, intended stage) of real simulated samples of the stage mixture (reduced field)."""
    from svr_jax.simulated import simulated

    return [(m, s) for _, m, _, s in simulated(small_cfg, small_params, stage="mixed", seed=11, n=N_SAMPLES, batch=N_SAMPLES)]


def diseased(measured, kinds=("microaneurysm",)):
    return next(m for m, _ in measured if all(m.of(k) for k in kinds))


def test_every_task_text_is_consistent_with_its_measurements(measured):
    for i, (m, _) in enumerate(measured):
        for seed in (i, i + 1000):
            for task in tasks.TASKS:
                text = tasks.answer(task, seed, m)
                assert check.contradictions(text, m, task=task) == [], text


def test_reasoning_ends_with_parseable_diagnosis_and_follows_the_stage_order(measured):
    order = ["field", "quality", "faz", "density", "np", "ma", "irma", "tortuosity", "impression"]
    for i, (m, _) in enumerate(measured):
        text = reasoning.reasoning(i, m)
        assert check.final_line_parses(text)
        parsed = parse_answer(text)
        assert parsed.stage == m.stage and parsed.dr == bool(m.label_dr)
        heads = [f.split(".")[0].split("_")[0].replace("nv", "irma") for f in reasoning.families(m)]
        positions = [order.index(h) for h in heads]
        assert positions == sorted(positions)
        assert re.search(r"\d mm²", text) and "%" in text  # numbers carry units


def test_measured_stage_mostly_equals_intended_and_every_stage_occurs(measured):
    agree = np.mean([m.stage == s for m, s in measured])
    assert agree >= 0.9
    assert {m.stage for m, _ in measured} == set(measure.STAGES)


def test_planted_wrong_texts_are_caught(measured):
    m = diseased(measured, ("microaneurysm", "nonperfusion"))
    text = reasoning.reasoning(0, m)
    n_ma = len(m.microaneurysms)
    wrong_sector = next(s for s in ("superior parafoveal", "inferior parafoveal", "nasal parafoveal", "temporal parafoveal", "central")
                        if s not in {l.sector for l in m.microaneurysms})
    other_stage = next(s for s in ("mild NPDR", "moderate NPDR", "severe NPDR", "PDR") if measure.STAGES[
        ("normal", "mild NPDR", "moderate NPDR", "severe NPDR", "PDR").index(s)] != m.stage)
    planted = {
        "count": f"There are {n_ma + 2} microaneurysms.",
        "count in words": f"I count {templates.NUMBER_WORDS[(n_ma + 1) % 20]} microaneurysms.",
        "sector": f"Microaneurysms are seen in the {wrong_sector} sector.",
        "stage": f"Diagnosis: {other_stage}",
        "faz area": f"The FAZ measures {m.faz_area_mm2 + 0.05:.2f} mm², within the normal range.",
        "density": f"Overall vessel density is {m.density_pct + 3:.1f}%.",
        "non-perfusion area": f"Non-perfusion: one area, {m.nonperfusion_mm2 + 0.3:.2f} mm² in the central sector.",
        "absent lesion claimed": "There is no capillary non-perfusion.",
        "present lesion denied": "Neovascularization is present in the superior parafoveal sector." if not m.neovascularization
        else "No neovascularization is seen.",
        "eye": "This is an OCTA of the " + ("left eye (OS)." if m.laterality == "OD" else "right eye (OD)."),
        "tortuosity": f"Tortuosity index is {m.tortuosity_index + 0.1:.3f}.",
    }
    for name, sentence in planted.items():
        assert check.contradictions(sentence, m), name
        # Also when planted among otherwise true sentences.
        lines = text.splitlines()
        assert check.contradictions("\n".join(lines[:-1] + [sentence, lines[-1]]), m), name
    box = m.microaneurysms[0].bbox_rel
    shifted = json.dumps([{"bbox_2d": [box[0] + 40, box[1], box[2] + 40, box[3]], "label": "microaneurysm"}])
    assert check.contradictions(shifted, m, task="grounding")
    assert check.contradictions("Yes, there is diabetic retinopathy.", m.replace(lesions=()), task="dr_yes_no")


def test_sentence_families_are_functions_of_measured_findings_only(measured):
    assert "stage" not in {f.name for f in dataclasses.fields(Measured)}  # the stage is graded, not given
    healthy = next(m for m, s in measured if s == "normal")
    sick = next(m for m, s in measured if s in ("severe", "pdr"))
    # Same measured FAZ -> same FAZ sentence family (and same FAZ sentences for the same seed).
    sick_same_faz = sick.replace(faz_area_mm2=healthy.faz_area_mm2, faz_circularity=healthy.faz_circularity,
                                 faz_offset_mm=healthy.faz_offset_mm)
    faz = lambda m: [f for f in reasoning.families(m) if f.startswith("faz")]  # noqa: E731
    assert faz(sick_same_faz) == faz(healthy)
    for seed in range(5):
        s_h = [s for f, s in reasoning.sentences(seed, healthy) if f.startswith("faz")]
        s_s = [s for f, s in reasoning.sentences(seed, sick_same_faz) if f.startswith("faz")]
        assert s_h == s_s
    # A diseased sample whose measurements show no lesion reads exactly like a healthy one.
    cleared = sick.replace(lesions=(), tortuosity_index=healthy.tortuosity_index, faz_area_mm2=healthy.faz_area_mm2,
                           faz_circularity=healthy.faz_circularity)
    assert cleared.stage == "normal"
    lesion_families = {f for f in reasoning.families(cleared) if f.split(".")[0] in ("np", "ma", "irma", "nv", "irma_nv")}
    assert lesion_families == {"np.none", "ma.none", "irma_nv.none"}
    # Every family that fires is determined by the measurements: the seed changes wording only.
    for m, _ in measured:
        fams = reasoning.families(m)
        for seed in range(3):
            assert [f for f, _ in reasoning.sentences(seed, m)] == fams


def test_phrasing_varies_facts_do_not(measured):
    m = diseased(measured)
    texts = {reasoning.reasoning(seed, m) for seed in range(30)}
    assert len(texts) >= 20
    for t in texts:
        assert check.contradictions(t, m) == []
    sentences = [s for i, (m, _) in enumerate(measured) for s in check.split_sentences(reasoning.reasoning(i, m))]
    assert len(set(sentences)) / len(sentences) >= 0.5


def test_grading_rules():
    base = Measured(fov_mm=3.0, size_px=304, laterality="OD", contrast=0.3, faz_area_mm2=0.3, faz_circularity=0.8,
                    faz_offset_mm=0.0, density_pct=40.0)
    lesion = lambda kind, area=0.01: Lesion(kind, "superior parafoveal", (0.0, -1.0), area, (0, 0, 1, 1), (0, 0, 7, 7))  # noqa: E731
    assert base.stage == "normal"
    assert base.replace(lesions=(lesion("microaneurysm"),) * 3).stage == "mild"
    assert base.replace(lesions=(lesion("microaneurysm"),) * 8).stage == "moderate"
    assert base.replace(lesions=(lesion("nonperfusion", 0.2),)).stage == "moderate"
    assert base.replace(lesions=(lesion("nonperfusion", 0.2),) * 3).stage == "severe"
    assert base.replace(lesions=(lesion("nonperfusion", 0.7),)).stage == "severe"
    assert base.replace(lesions=(lesion("irma"),)).stage == "severe"
    assert base.replace(lesions=(lesion("neovascularization"), lesion("irma"))).stage == "pdr"


def test_sectors_follow_laterality_and_faz_geometry():
    assert measure.sector_of(0.8, 0.1, +1) == "nasal parafoveal"  # OD: nasal is to the right
    assert measure.sector_of(0.8, 0.1, -1) == "temporal parafoveal"
    assert measure.sector_of(0.1, -2.0, +1) == "superior perifoveal"  # y down: superior is up
    assert measure.sector_of(0.1, 0.2, -1) == "central"
    y, x = np.mgrid[:128, :128]
    disc = (x - 60) ** 2 + (y - 70) ** 2 < 20**2
    area, circularity, center = measure.faz_geometry(disc, 0.01)
    assert area == pytest.approx(np.pi * 0.2**2, rel=0.03) and circularity > 0.95
    np.testing.assert_allclose(center, [0.605, 0.705], atol=0.01)
    ellipse = ((x - 64) / 40) ** 2 + ((y - 64) / 12) ** 2 < 1
    assert measure.faz_geometry(ellipse, 0.01)[1] < 0.75


def test_conversation_records_match_the_export_schema(measured):
    prompts = tasks.all_prompts()
    assert len(prompts) >= 20
    m = diseased(measured)
    for task in tasks.TASKS:
        rec = tasks.conversation("img.png", task, 3, m)
        assert set(rec) == {"images", "messages", "task", "stage", "label_dr"}
        user, assistant = rec["messages"]
        assert user["role"] == "user" and user["content"][0] == {"type": "image", "text": None}
        assert user["content"][1]["type"] == "text" and user["content"][1]["text"] in prompts
        assert assistant["role"] == "assistant" and assistant["content"][0]["type"] == "text"
        assert rec["stage"] in measure.STAGES and rec["label_dr"] in (0, 1)
    for mm, _ in measured:
        yes_no = tasks.answer("dr_yes_no", 0, mm)
        assert yes_no.startswith("Yes" if mm.label_dr else "No")
        boxes = json.loads(tasks.answer("grounding", 0, mm, label="microaneurysm")) if mm.microaneurysms else []
        for b, lesion in zip(boxes, mm.microaneurysms):
            assert all(0 <= v <= 1000 for v in b["bbox_2d"]) and b["bbox_2d"] == list(lesion.bbox_rel)


def test_paraphraser_keeps_checked_rewrites_and_falls_back_otherwise(measured):
    m = diseased(measured)
    text = reasoning.reasoning(0, m)
    faithful = Paraphraser(lambda t: t.replace("Diagnosis:", "\nDiagnosis:").replace("\n\n", "\n").replace("  ", " "))
    assert faithful(text, m) != "" and faithful.accepted == 1
    n = len(m.microaneurysms)
    miscounting = Paraphraser(lambda t: f"There are {n + 3} microaneurysms.\n" + t)
    assert miscounting(text, m) == text and miscounting.rejected == 1 and miscounting.last_reasons
    no_final_line = Paraphraser(lambda t: t.rsplit("\n", 1)[0])
    assert no_final_line(text, m) == text
    def broken(t):
        raise RuntimeError("model failed")
    assert Paraphraser(broken)(text, m) == text


def test_measured_round_trips_through_json(measured):
    for m, _ in measured[:8]:
        assert measure.from_dict(json.loads(json.dumps(measure.to_dict(m)))) == m


def test_check_text_cli_over_an_exported_folder(tmp_path, measured, capsys):
    m = diseased(measured)
    good = {"messages": [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Stage?"}]},
                         {"role": "assistant", "content": [{"type": "text", "text": reasoning.reasoning(1, m)}]}],
            "task": "reasoning", "metadata": json.dumps({"measured": measure.to_dict(m)})}
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "train.jsonl").write_text(json.dumps(good) + "\n")
    assert cli.main(["check-text", f"dir={tmp_path / 'ok'}"]) == 0
    assert '"contradictions": 0' in capsys.readouterr().out
    bad = json.loads(json.dumps(good))
    bad["messages"][1]["content"][0]["text"] = reasoning.reasoning(1, m).replace("Diagnosis: ", "Diagnosis: not ")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(SystemExit) as failed:
        cli.main(["check-text", f"dir={tmp_path / 'bad'}"])
    assert failed.value.code == 1
    assert cli.main(["check-text", "stage=bogus"]) == 2
    assert cli.main(["check-text", f"dir={tmp_path / 'missing'}"]) == 2
    assert "error:" in capsys.readouterr().err
