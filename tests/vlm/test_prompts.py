"""The export's prompt set: read from prompts.json (written beside the card) or from the shards themselves."""

import numpy as np
import pytest
from export_writer import FIXTURE_DIR, fixture_records, make_row, write_export

from train_vlm.prompts import find_prompt_set, generation_prompt, prompts_from_shards, score_prompt, write_prompt_set


def test_prompt_set_of_the_real_export():
    prompt_set = find_prompt_set(FIXTURE_DIR)
    assert set(prompt_set.by_task) == {"reasoning", "dr_yes_no", "stage", "count_ma", "grounding", "caption"}
    # Every prompt the export's records were asked is in the set.
    for record in fixture_records():
        assert record["prompt"] in prompt_set.by_task[record["task"]]
    assert "Diagnosis: ..." in generation_prompt(prompt_set)  # the one that names the answer's last line
    assert score_prompt(prompt_set) == "Does this OCTA show diabetic retinopathy? Answer yes or no."


def test_prompts_from_shards_without_prompts_json(tmp_path):
    records = fixture_records()[:40]
    write_export(tmp_path, [make_row(r, np.random.default_rng(0)) for r in records], num_shards=2, prompts=False)
    prompt_set = find_prompt_set(tmp_path)
    assert prompt_set.source.endswith("(shards)")
    assert prompt_set.by_task == prompts_from_shards(tmp_path)
    assert {(r["task"], r["prompt"]) for r in records} == {
        (task, prompt) for task, prompts in prompt_set.by_task.items() for prompt in prompts
    }
    copied = find_prompt_set(write_prompt_set(prompt_set, tmp_path / "model"))
    assert copied.by_task == prompt_set.by_task


def test_no_prompt_set(tmp_path):
    assert find_prompt_set(None) is None and find_prompt_set(tmp_path) is None
    with pytest.raises(ValueError, match="reasoning"):
        generation_prompt(type(find_prompt_set(FIXTURE_DIR))({"caption": ("x",)}, "test"))
