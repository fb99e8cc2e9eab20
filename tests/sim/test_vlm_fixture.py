"""The train_vlm tests' export fixture is what `svr export` writes, and it holds every answer form.

tests/vlm parse every answer of `tests/vlm/fixtures/svr_export/` (they never import the simulator); this
test re-runs the exporter for the fixture's config and checks the fixture's bytes, and checks against
the templates that the fixture holds every answer template of every task at every stage it can take.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from svr_jax.text import templates as T
from svr_jax.text.reasoning import cap

REPO = Path(__file__).resolve().parents[2]


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_vlm_fixture", REPO / "scripts" / "make_vlm_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stage_values(stage: str) -> dict:
    """The placeholders a template fills from the stage alone (the rest vary with the image)."""
    return dict(
        stage_text=T.STAGE_TEXT[stage], Stage_text=cap(T.STAGE_TEXT[stage]), stage_short=T.STAGE_SHORT[stage],
        Stage_short=cap(T.STAGE_SHORT[stage]), Stage_short_cap=cap(T.STAGE_SHORT[stage]),
    )  # fmt: skip


def template_regex(template: str, known: dict) -> re.Pattern:
    """`template` as a full-match regex: known placeholders literal, the others any text."""
    parts = re.split(r"(\{\w+\})", template)
    pattern = "".join(
        (re.escape(known[p[1:-1]]) if p[1:-1] in known else ".+?") if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(pattern, re.DOTALL)


def answer_forms() -> dict[tuple, list[str]]:
    """(task, template family, index, stage) -> the stages' templates, for every form an answer can take."""
    forms = {}
    dr_stages = ("mild", "moderate", "severe", "pdr")
    for i, t in enumerate(T.YES_NO["yes"]):
        forms.update({("dr_yes_no", "yes", i, s): t for s in dr_stages})
    for i, t in enumerate(T.YES_NO["no"]):
        forms[("dr_yes_no", "no", i, "normal")] = t
    for i, t in enumerate(T.STAGE_ANSWER):
        forms.update({("stage", "answer", i, s): t for s in T.STAGE_TEXT})
    for i, t in enumerate(T.CAPTIONS["caption.normal"]):
        forms[("caption", "normal", i, "normal")] = t
    for i, t in enumerate(T.CAPTIONS["caption.dr"]):
        forms.update({("caption", "dr", i, s): t for s in dr_stages})
    for s, diagnosis in T.DIAGNOSIS.items():
        forms[("reasoning", "diagnosis", 0, s)] = "{text}\nDiagnosis: " + diagnosis
    for kind in ("none", "some"):
        for i, t in enumerate(T.COUNT_MA[kind]):
            forms[("count_ma", kind, i, None)] = t
    for i, t in enumerate(T.GROUNDING_EMPTY):
        forms[("grounding", "empty", i, None)] = t
    forms[("grounding", "boxes", 0, None)] = '[{"bbox_2d": {boxes}]'
    return forms


def form_of(record: dict, forms: dict) -> tuple | None:
    """The form of a record's answer: of the templates it matches, the one with the most literal text
    ("I count {count} ..." over "{Count_digit} ...", which matches the same answer with "I" as a digit)."""
    answer = record["messages"][1]["content"][0]["text"]
    matches = []
    for key, template in forms.items():
        task, _, _, stage = key
        if task != record["task"] or (stage is not None and stage != record["stage"]):
            continue
        if template_regex(template, _stage_values(record["stage"])).fullmatch(answer):
            matches.append((len(re.sub(r"\{\w+\}", "", template)), key))
    return max(matches, key=lambda match: match[0])[1] if matches else None


def test_fixture_holds_every_answer_form():
    records = [json.loads(line) for line in (REPO / "tests/vlm/fixtures/svr_export/records.jsonl").read_text().splitlines()]
    forms = answer_forms()
    seen = [form_of(record, forms) for record in records]
    unmatched = [r["messages"][1]["content"][0]["text"][:120] for r, key in zip(records, seen) if key is None]
    assert not unmatched, f"answers that match no template: {unmatched[:3]}"
    missing = sorted(set(forms) - set(seen), key=str)
    assert not missing, f"{len(missing)} answer forms absent from the fixture: {missing}"


@pytest.mark.slow
def test_fixture_equals_what_the_exporter_writes():
    module = _fixture_module()
    fresh = module.fresh_fixture_files()
    committed = module.committed_fixture_files()
    assert sorted(fresh) == sorted(committed)
    for name in committed:
        assert fresh[name] == committed[name], f"{name} differs: rerun `python scripts/make_vlm_fixture.py`"
