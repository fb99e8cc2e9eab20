import pytest

from train_vlm.answers import parse_answer


@pytest.mark.parametrize(
    "answer, dr, stage, source",
    [
        ("Vessels look fine.\nDiagnosis: normal", False, "normal", "diagnosis"),
        ("FAZ enlarged.\nDiagnosis: mild NPDR", True, "mild", "diagnosis"),
        ("Diagnosis: moderate NPDR.", True, "moderate", "diagnosis"),
        ("diagnosis: Severe npdr", True, "severe", "diagnosis"),
        ("Neovascularization.\nDiagnosis: PDR", True, "pdr", "diagnosis"),
        ("**Diagnosis:** PDR", True, "pdr", "diagnosis"),
        # The last Diagnosis line wins (a reasoning chain may mention one earlier).
        ("Diagnosis: normal at first sight...\nDiagnosis: PDR", True, "pdr", "diagnosis"),
        # DR = anything but normal, even outside the five fixed names.
        ("Diagnosis: diabetic retinopathy", True, None, "diagnosis"),
        ("Diagnosis: no diabetic retinopathy", False, "normal", "diagnosis"),
        ("Yes", True, None, "yes_no"),
        ("yes, microaneurysms are visible.", True, None, "yes_no"),
        ("No. The vasculature is normal.", False, None, "yes_no"),
        ("", None, None, "unparseable"),
        ("I am not sure what this image shows.", None, None, "unparseable"),
        ("Diagnosis:", None, None, "unparseable"),
        ("Nothing abnormal", None, None, "unparseable"),  # "No" must be a whole word
    ],
)
def test_parse_answer(answer, dr, stage, source):
    parsed = parse_answer(answer)
    assert (parsed.dr, parsed.stage, parsed.source) == (dr, stage, source)
    assert parsed.parseable == (dr is not None)
