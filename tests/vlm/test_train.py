"""Training on the 8 fixed records: the loss falls in every mode; adapters and merges reload to the same loss."""

from pathlib import Path

import pytest
import torch
from conftest import tiny_model_args, tiny_sft_config

from train_vlm.data import load_export
from train_vlm.train import (
    DataArguments,
    RunArguments,
    apply_global_batch_size,
    build_trainer,
    mean_assistant_loss,
    resume_checkpoint,
    train,
)

REPO = Path(__file__).resolve().parents[2]

# Steps and learning rates that bring each mode down on the tiny model within seconds. The vision mode
# trains only the vision side under a frozen (random) language model, so it steers the answers through
# 16 image tokens alone and needs the most steps.
MODE_SCHEDULES = {"full": (40, 3e-3), "lora": (60, 1e-2), "vision": (200, 3e-3)}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, export_dir, tmp_path_factory):
    """Train each mode once; keep loss before/after and the output folder."""
    results = {}
    for mode, (steps, learning_rate) in MODE_SCHEDULES.items():
        output_dir = tmp_path_factory.mktemp(f"train_{mode}")
        trainer = build_trainer(
            tiny_model_args(tiny_model_dir, train_mode=mode),
            DataArguments(train_data=str(export_dir)),
            tiny_sft_config(output_dir, max_steps=steps, learning_rate=learning_rate),
        )
        records = trainer.train_dataset
        before = mean_assistant_loss(trainer.model, trainer.processing_class, records)
        trainer.train()
        after = mean_assistant_loss(trainer.model, trainer.processing_class, records)
        trainer.save_model(str(output_dir))
        trainer.processing_class.save_pretrained(str(output_dir))
        results[mode] = {"before": before, "after": after, "trainer": trainer, "output_dir": output_dir}
        print(f"{mode}: assistant loss {before:.4f} -> {after:.4f} ({100 * (1 - after / before):.1f}% drop)")
    return results


@pytest.mark.parametrize("mode", list(MODE_SCHEDULES))
def test_loss_falls_by_90_percent(trained, mode):
    before, after = trained[mode]["before"], trained[mode]["after"]
    assert before > 4.0  # near log(vocab): the tiny model starts knowing nothing
    assert after <= 0.1 * before, f"{mode}: {before:.3f} -> {after:.3f}"


def test_frozen_parts_stay_frozen(trained, tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, local_files_only=True).state_dict()
    vision_model = trained["vision"]["trainer"].model
    tuned = vision_model.state_dict()
    lm_weight = "model.language_model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(tuned[lm_weight], base[lm_weight], rtol=0, atol=0)
    torch.testing.assert_close(tuned["lm_head.weight"], base["lm_head.weight"], rtol=0, atol=0)
    merger_weight = "model.visual.merger.linear_fc2.weight"
    assert not torch.equal(tuned[merger_weight], base[merger_weight])


def test_saved_lora_adapter_reloads_to_the_same_loss(trained, tiny_model_dir, export_dir):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from train_vlm.model import load_processor

    output_dir = trained["lora"]["output_dir"]
    assert (output_dir / "adapter_config.json").is_file()
    assert not (output_dir / "model.safetensors").exists()  # only the adapter is saved
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32, local_files_only=True)
    reloaded = PeftModel.from_pretrained(base, str(output_dir))
    processor = load_processor(output_dir, local_files_only=True)
    loss = mean_assistant_loss(reloaded, processor, load_export(export_dir))
    assert loss == pytest.approx(trained["lora"]["after"], rel=1e-4, abs=1e-6)


def test_merged_lora_gives_the_same_loss(trained, tiny_model_dir, export_dir, tmp_path):
    from train_vlm.merge_lora import main as merge_main
    from train_vlm.model import ModelArguments, load_model_and_processor

    merged_dir = merge_main(
        ["--adapter", str(trained["lora"]["output_dir"]), "--output_dir", str(tmp_path / "merged"),
         "--dtype", "float32", "--local_files_only", "true"]
    )  # fmt: skip
    model, processor = load_model_and_processor(
        ModelArguments(model_name_or_path=str(merged_dir), dtype="float32", local_files_only=True,
                       image_min_pixels=None, image_max_pixels=None)
    )  # fmt: skip
    assert not any("lora_" in name for name, _ in model.named_parameters())
    loss = mean_assistant_loss(model, processor, load_export(export_dir))
    assert loss == pytest.approx(trained["lora"]["after"], rel=1e-3, abs=1e-5)


def test_global_batch_size_sets_gradient_accumulation(tmp_path):
    config = tiny_sft_config(tmp_path, max_steps=1, learning_rate=1e-3, per_device_train_batch_size=4)
    apply_global_batch_size(config, RunArguments(global_batch_size=32), n_processes=2)
    assert config.gradient_accumulation_steps == 4
    with pytest.raises(ValueError, match="multiple"):
        apply_global_batch_size(config, RunArguments(global_batch_size=30), n_processes=2)


@pytest.mark.parametrize("recipe", ["lora", "vision", "full"])
def test_recipes_parse_with_overrides(recipe):
    from trl import SFTConfig, TrlParser

    from train_vlm.model import ModelArguments

    parser = TrlParser((ModelArguments, DataArguments, RunArguments, SFTConfig))
    model_args, data_args, run_args, sft_config = parser.parse_args_and_config(
        args=["--config", str(REPO / "train_vlm" / "recipes" / f"{recipe}.yaml"), "--train_data", "/export",
              "--output_dir", "/tmp/out-override", "--use_cpu", "true"]  # bf16 recipes refuse CPUs otherwise
    )  # fmt: skip
    assert model_args.train_mode == recipe
    assert model_args.model_name_or_path == "Qwen/Qwen3-VL-8B-Instruct"
    assert data_args.train_data == "/export" and sft_config.output_dir == "/tmp/out-override"
    assert sft_config.assistant_only_loss and sft_config.max_length is None
    assert sft_config.lr_scheduler_type == "cosine" and sft_config.num_train_epochs == 1
    assert sft_config.report_to == ["tensorboard"] and run_args.auto_resume
    assert data_args.eval_split == "train"  # what `svr export` writes
    if recipe == "vision":  # the published SVR recipe: lr 1e-5, 512 x 512 px cap, 16 per device x 2
        assert sft_config.learning_rate == 1e-5 and sft_config.warmup_steps == 0.1 and sft_config.bf16
        assert model_args.image_max_pixels == 262_144
        assert (sft_config.per_device_train_batch_size, sft_config.gradient_accumulation_steps) == (16, 2)
        assert run_args.global_batch_size is None
    else:
        assert run_args.global_batch_size == 32


def test_accelerate_configs_point_at_matching_deepspeed_stages():
    import json

    import yaml

    folder = REPO / "train_vlm" / "accelerate"
    for name, stage in [("zero2", 2), ("zero3", 3), ("multinode", 3)]:
        config = yaml.safe_load((folder / f"{name}.yaml").read_text())
        assert config["distributed_type"] == "DEEPSPEED"
        ds_path = REPO / config["deepspeed_config"]["deepspeed_config_file"]
        assert json.loads(ds_path.read_text())["zero_optimization"]["stage"] == stage
    multinode = yaml.safe_load((folder / "multinode.yaml").read_text())
    assert multinode["num_machines"] > 1 and multinode["num_processes"] % multinode["num_machines"] == 0


def test_resumes_from_the_latest_checkpoint(tiny_model_dir, export_dir, tmp_path, caplog):
    """A second run in the same output_dir continues from its last checkpoint without being told."""
    output_dir = tmp_path / "out"

    def run(max_steps, **run_args):
        return train(
            tiny_model_args(tiny_model_dir, train_mode="full"),
            DataArguments(train_data=str(export_dir)),
            tiny_sft_config(output_dir, max_steps=max_steps, learning_rate=1e-3, per_device_train_batch_size=4,
                            save_strategy="steps", save_steps=2, logging_steps=1),
            RunArguments(**run_args),
        )  # fmt: skip

    first = run(4)
    assert first.state.global_step == 4 and (output_dir / "checkpoint-4").is_dir()
    config = tiny_sft_config(output_dir, max_steps=6, learning_rate=1e-3)
    assert resume_checkpoint(config, RunArguments()) == str(output_dir / "checkpoint-4")
    assert resume_checkpoint(config, RunArguments(auto_resume=False)) is None
    with caplog.at_level("INFO", logger="train_vlm.train"):
        second = run(6)
    assert f"resuming from {output_dir / 'checkpoint-4'}" in caplog.text
    assert second.state.global_step == 6 and (output_dir / "checkpoint-6").is_dir()
    # Only steps 5 and 6 ran again: the restored history holds each step's loss once.
    assert [entry["step"] for entry in second.state.log_history if "loss" in entry] == [1, 2, 3, 4, 5, 6]


def test_lora_with_bf16_and_gradient_checkpointing_learns_on_cpu(tiny_model_dir, export_dir, tmp_path):
    """bf16 weights and autocast with gradient checkpointing: the adapters still get gradients and learn."""
    trainer = build_trainer(
        tiny_model_args(tiny_model_dir, train_mode="lora", dtype="bfloat16"),
        DataArguments(train_data=str(export_dir)),
        tiny_sft_config(tmp_path, max_steps=30, learning_rate=1e-2, bf16=True, gradient_checkpointing=True),
    )
    assert trainer.args.bf16 and trainer.args.gradient_checkpointing
    records = trainer.train_dataset
    before = mean_assistant_loss(trainer.model, trainer.processing_class, records)
    trainer.train()
    base = trainer.model.get_base_model()
    assert base.is_gradient_checkpointing and base.model.language_model.layers[0].gradient_checkpointing
    assert base.lm_head.weight.dtype == torch.bfloat16
    after = mean_assistant_loss(trainer.model, trainer.processing_class, records)
    assert after < 0.5 * before, f"{before:.3f} -> {after:.3f}"


def test_bf16_vision_mode_keeps_fp32_masters(tiny_model_dir, export_dir, tmp_path):
    """Loaded in bf16, the trained vision side becomes fp32 (the frozen LM stays bf16), so an lr 1e-5 step
    moves it: in bf16 alone such updates round away."""
    trainer = build_trainer(
        tiny_model_args(tiny_model_dir, train_mode="vision", dtype="bfloat16"),
        DataArguments(train_data=str(export_dir)),
        tiny_sft_config(tmp_path, max_steps=2, learning_rate=1e-5, bf16=True, gradient_checkpointing=True),
    )
    model = trainer.model
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert model.lm_head.weight.dtype == torch.bfloat16 and not model.lm_head.weight.requires_grad
    weight = model.model.visual.merger.linear_fc2.weight
    before = weight.detach().clone()
    trainer.train()
    changed = (weight.detach() != before).float().mean().item()
    assert changed > 0.5, f"only {changed:.0%} of the merger's weights moved"
    # The same step on bf16 weights: an Adam update of about lr leaves most of them where they were.
    in_bf16 = before.bfloat16()
    assert (in_bf16 + torch.full_like(in_bf16, 1e-5) == in_bf16).float().mean().item() > 0.5
