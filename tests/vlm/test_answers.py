"""The answer parser: hand-picked phrasings, negations, markdown, and every answer of a real `svr export`."""

import pytest
from export_writer import fixture_records

from train_vlm.answers import mentions, parse_answer, strip_markdown

DIAGNOSTIC_TASKS = ("reasoning", "dr_yes_no", "stage", "caption")


@pytest.mark.parametrize(
    "answer, dr, stage, source",
    [
        ("Vessels look fine.\nDiagnosis: normal", False, "normal", "diagnosis"),
        ("FAZ enlarged.\nDiagnosis: mild NPDR", True, "mild", "diagnosis"),
        ("Diagnosis: moderate NPDR.", True, "moderate", "diagnosis"),
        ("diagnosis: Severe npdr", True, "severe", "diagnosis"),
        ("Neovascularization.\nDiagnosis: PDR", True, "pdr", "diagnosis"),
        ("**Diagnosis:** PDR", True, "pdr", "diagnosis"),
        ("**Diagnosis**: Normal", False, "normal", "diagnosis"),
        ("## Impression\n- **Diagnosis**: *mild NPDR*", True, "mild", "diagnosis"),
        # The last Diagnosis line wins (a reasoning chain may mention one earlier).
        ("Diagnosis: normal at first sight...\nDiagnosis: PDR", True, "pdr", "diagnosis"),
        # DR = anything named DR, even outside the five fixed names; a stage only when one is named.
        ("Diagnosis: diabetic retinopathy", True, None, "diagnosis"),
        ("Diagnosis: non-proliferative diabetic retinopathy", True, None, "diagnosis"),
        ("Diagnosis: no diabetic retinopathy", False, "normal", "diagnosis"),
        ("Diagnosis: No DR", False, "normal", "diagnosis"),
        ("Yes", True, None, "yes_no"),
        ("yes, microaneurysms are visible.", True, None, "yes_no"),
        ("No. The vasculature is normal.", False, "normal", "yes_no"),
        ("", None, None, "unparseable"),
        ("I am not sure what this image shows.", None, None, "unparseable"),
        ("Diagnosis:", None, None, "unparseable"),
        ("Nothing abnormal", None, None, "unparseable"),  # "abnormal" is not "normal"
        # "No" must stand alone: these exported count / grounding answers make no DR call.
        ("No microaneurysms are seen.", None, None, "unparseable"),
        ("No lesions of that kind are visible, so there is nothing to box: []", None, None, "unparseable"),
    ],
)
def test_parse_answer(answer, dr, stage, source):
    parsed = parse_answer(answer)
    assert (parsed.dr, parsed.stage, parsed.source) == (dr, stage, source)
    assert parsed.parseable == (dr is not None)


@pytest.mark.parametrize(
    "answer",
    [
        "No signs of diabetic retinopathy.",
        "negative for DR",
        "There is no evidence of DR.",
        "No evidence of diabetic retinopathy is seen in this OCTA.",
        "Unremarkable OCTA",
        "The image does not show any signs of diabetic retinopathy.",
        "Diabetic retinopathy is absent.",
        "DR: none",
        "The retina appears healthy, without diabetic retinopathy.",
        "This OCTA is free of diabetic retinopathy; the FAZ is of normal size.",
        "Findings: within normal limits.",
    ],
)
def test_negated_and_normal_answers_are_no_dr(answer):
    parsed = parse_answer(answer)
    assert (parsed.dr, parsed.stage) == (False, "normal"), parsed


@pytest.mark.parametrize(
    "answer, stage",
    [
        ("The findings are consistent with diabetic retinopathy.", None),
        ("Moderate non-proliferative diabetic retinopathy.", "moderate"),
        # Negations inside the evidence do not reach the stage named after a comma or in another clause.
        ("Two microaneurysms without non-perfusion, IRMA or neovascularization, consistent with mild NPDR.", "mild"),
        ("No neovascularization is seen. Severe NPDR.", "severe"),
        ("The FAZ is normal but there is proliferative diabetic retinopathy.", "pdr"),
        ("Signs of DR: microaneurysms and capillary dropout.", None),
    ],
)
def test_affirmed_dr_is_dr(answer, stage):
    parsed = parse_answer(answer)
    assert (parsed.dr, parsed.stage) == (True, stage), parsed


def test_proliferative_inside_non_proliferative_is_not_pdr():
    (mention,) = mentions("severe non-proliferative diabetic retinopathy (severe NPDR)")
    assert mention.stage == "severe" and not mention.negated
    assert parse_answer("Non-proliferative diabetic retinopathy").stage is None


def test_strip_markdown():
    assert strip_markdown("**Diagnosis**: __Normal__") == "Diagnosis: Normal"


def test_every_answer_of_a_real_export_parses_to_its_label():
    """Every record of the committed `svr export` fixture (all tasks, every answer template, every stage).

    Diagnostic tasks must give the record's DR label and stage; microaneurysm counts and bounding boxes
    make no DR call, so they must come out unparseable rather than as an invented diagnosis.
    """
    records = fixture_records()
    assert {record["task"] for record in records} == {*DIAGNOSTIC_TASKS, "count_ma", "grounding"}
    wrong = []
    for record in records:
        parsed = parse_answer(record["answer"])
        if record["task"] in DIAGNOSTIC_TASKS:
            ok = parsed.dr == bool(record["label_dr"]) and parsed.stage == record["stage"]
        else:
            ok = not parsed.parseable
        if not ok:
            wrong.append((record["task"], record["stage"], record["answer"][-200:], parsed))
    assert not wrong, f"{len(wrong)} of {len(records)} answers misread, e.g. {wrong[:3]}"
