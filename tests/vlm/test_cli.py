"""The `svr-vlm` entry point and `python -m train_vlm.train` with a shipped recipe."""

from pathlib import Path

import pytest
from conftest import TINY_MAX_PIXELS, TINY_MIN_PIXELS

from train_vlm.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def test_help_and_unknown_command(capsys):
    main(["--help"])
    printed = capsys.readouterr().out
    assert all(f"svr-vlm {command} " in printed for command in COMMANDS)
    with pytest.raises(SystemExit, match="unknown command"):
        main(["fly"])


def test_make_tiny_command(tmp_path):
    main(["make-tiny", str(tmp_path / "tiny")])
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {
        path.name for path in (tmp_path / "tiny").iterdir()
    }


def test_train_command_with_the_vision_recipe(tiny_model_dir, export_dir, tmp_path):
    """The published recipe as shipped (gradient checkpointing on), only shrunk to the tiny model on a CPU."""
    output_dir = tmp_path / "out"
    main(
        ["train", "--config", str(REPO / "train_vlm" / "recipes" / "vision.yaml"),
         "--train_data", str(export_dir), "--model_name_or_path", str(tiny_model_dir), "--local_files_only", "true",
         "--dtype", "float32", "--use_cpu", "true", "--bf16", "false", "--max_steps", "2",
         "--per_device_train_batch_size", "4", "--global_batch_size", "8", "--dataloader_num_workers", "0",
         "--image_min_pixels", str(TINY_MIN_PIXELS), "--image_max_pixels", str(TINY_MAX_PIXELS),
         "--output_dir", str(output_dir), "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1"]
    )  # fmt: skip
    saved = {path.name for path in output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "chat_template.jinja", "prompts.json"} <= saved
    # The recipe logs to TensorBoard by default: event files under <output_dir>/runs/.
    events = list((output_dir / "runs").rglob("events.out.tfevents*"))
    assert events and sum(path.stat().st_size for path in events) > 0
