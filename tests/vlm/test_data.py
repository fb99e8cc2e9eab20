import json

import numpy as np
import pytest
from conftest import IMAGE_SIZE_PX, fixed_records, tiny_model_args
from export_writer import export_schema, fixture_records, make_row, write_export
from PIL import Image

from train_vlm.data import find_shards, load_export


def test_find_shards_of_an_export_folder(export_dir):
    shards = find_shards(export_dir)
    assert [s.rsplit("/", 1)[-1] for s in shards] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    assert find_shards(str(export_dir / "data" / "train-*.parquet")) == shards
    with pytest.raises(FileNotFoundError, match="test"):
        find_shards(export_dir, split="test")


@pytest.mark.parametrize("plain_pyarrow", [False, True], ids=["datasets_parquet", "plain_pyarrow"])
def test_load_export_decodes_images_and_keeps_records(tmp_path, plain_pyarrow):
    records = fixed_records()
    write_export(tmp_path, records, num_shards=2, plain_pyarrow=plain_pyarrow)
    dataset = load_export(tmp_path)
    assert len(dataset) == len(records)
    for row, record in zip(dataset, records):
        assert row["id"] == record["id"]
        (image,) = row["images"]
        assert isinstance(image, Image.Image) and image.size == (IMAGE_SIZE_PX, IMAGE_SIZE_PX)
        expected = Image.open(__import__("io").BytesIO(record["images"][0]["bytes"]))
        np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
        assert row["messages"] == record["messages"]
        assert (row["task"], row["stage"], row["label_dr"], row["fov_mm"]) == (
            record["task"],
            record["stage"],
            record["label_dr"],
            record["fov_mm"],
        )
        assert json.loads(row["metadata"]) == json.loads(record["metadata"])


def test_exporter_columns_are_kept(export_dir):
    """The writer uses the real export's schema: its extra columns (index, masks) load and are left alone."""
    dataset = load_export(export_dir)
    assert dataset.column_names == export_schema().names
    assert {"index", "mask_vessel", "mask_faz"} <= set(dataset.column_names)


def test_task_filter_and_max_records(export_dir):
    assert set(load_export(export_dir, tasks=["stage"])["task"]) == {"stage"}
    n_stage = sum(record["task"] == "stage" for record in fixed_records())
    assert 0 < n_stage < 8 and len(load_export(export_dir, tasks=["stage"])) == n_stage
    assert len(load_export(export_dir, max_records=3)) == 3
    with pytest.raises(ValueError, match="Unknown task"):
        load_export(export_dir, tasks=["segmentation"])


def test_refuses_records_whose_images_and_placeholders_disagree(tmp_path):
    record = make_row(fixture_records()[0], np.random.default_rng(0))
    record["images"] = record["images"] * 2  # two images, one image part
    write_export(tmp_path, [record], num_shards=1)
    with pytest.raises(ValueError, match="2 image"):
        load_export(tmp_path)


def test_refuses_shards_missing_required_columns(tmp_path):
    record = make_row(fixture_records()[0], np.random.default_rng(0))
    del record["messages"]
    (tmp_path / "data").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([record]), tmp_path / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="messages"):
        load_export(tmp_path)


def test_sft_trainer_collates_the_records_unchanged(tiny_model_dir, export_dir, tmp_path):
    """SFTTrainer takes the loaded records as they are; its batches mask everything but assistant tokens."""
    from conftest import tiny_sft_config

    from train_vlm.train import DataArguments, build_trainer

    trainer = build_trainer(
        tiny_model_args(tiny_model_dir, train_mode="full"),
        DataArguments(train_data=str(export_dir)),
        tiny_sft_config(tmp_path, max_steps=1, learning_rate=1e-3),
    )
    dataset = load_export(export_dir)
    assert trainer.train_dataset.column_names == dataset.column_names  # no conversion pass
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["pixel_values"].shape[0] == len(dataset) * (IMAGE_SIZE_PX // 16) ** 2
    tokenizer = trainer.processing_class.tokenizer
    trained_texts = sorted(tokenizer.decode(labels[labels != -100]) for labels in batch["labels"])
    answers = sorted(row["messages"][1]["content"][0]["text"] + "<|im_end|>\n" for row in dataset)
    assert trained_texts == answers  # the batch is shuffled, so compare as sorted lists
