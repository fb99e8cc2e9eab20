import json

import numpy as np
import pytest
import torch
from conftest import tiny_model_args

from train_vlm.model import (
    ImageOnlyQwen3VLProcessor,
    count_parameters,
    freeze_for_mode,
    load_model_and_processor,
    load_processor,
)


def test_tiny_model_is_tiny_and_loads_offline(tiny_model_dir):
    model, processor = load_model_and_processor(tiny_model_args(tiny_model_dir))
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert 100_000 < count_parameters(model)["total"] < 1_000_000
    assert isinstance(processor, ImageOnlyQwen3VLProcessor)  # no torchvision on the CPU test machine
    assert "{% generation %}" not in processor.chat_template  # Qwen3-VL's stock template; TRL patches it
    tokenizer = processor.tokenizer
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert tokenizer.decode(tokenizer.encode("Diagnosis: moderate NPDR")) == "Diagnosis: moderate NPDR"


def test_processor_pixel_budget_and_save_round_trip(tiny_model_dir, tmp_path):
    from PIL import Image

    processor = load_processor(tiny_model_dir, min_pixels=64 * 64, max_pixels=96 * 96, local_files_only=True)
    out = processor.image_processor(images=[Image.new("RGB", (300, 300))], return_tensors="pt")
    height, width = (out["image_grid_thw"][0, 1:] * 16).tolist()
    assert height * width <= 96 * 96 and height % 32 == 0 and width % 32 == 0
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"
    reloaded = load_processor(tmp_path, local_files_only=True)
    assert reloaded.chat_template == processor.chat_template
    assert reloaded.image_processor.size.longest_edge == 96 * 96
    with pytest.raises(ValueError, match="images only"):
        processor(text=["x"], videos=[torch.zeros(2, 3, 32, 32)])


def _trainable_prefixes(model) -> set[str]:
    return {".".join(name.split(".")[:2]) for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_flags_per_mode(tiny_model_dir):
    model, _ = load_model_and_processor(tiny_model_args(tiny_model_dir))
    freeze_for_mode(model, "vision")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith("model.visual.") for name in trainable)
    assert any(".merger." in name for name in trainable) and any("deepstack_merger_list" in name for name in trainable)
    assert count_parameters(model)["trainable"] == sum(p.numel() for p in model.model.visual.parameters())
    freeze_for_mode(model, "full")
    assert count_parameters(model)["trainable"] == count_parameters(model)["total"]
    with pytest.raises(ValueError, match="train_mode"):
        freeze_for_mode(model, "everything")


def test_lora_targets_only_the_language_model(tiny_model_dir):
    from peft import get_peft_model

    from train_vlm.model import lora_config

    args = tiny_model_args(tiny_model_dir, train_mode="lora")
    model, _ = load_model_and_processor(args)
    peft_model = get_peft_model(model, lora_config(args))
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name and ".language_model." in name for name in trainable)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def partition_like_zero3(model: torch.nn.Module, *, world_size: int = 8, persistence_threshold: int = 100) -> None:
    """Leave the parameters as DeepSpeed ZeRO-3 leaves them on one rank after `zero.Init`.

    Each parameter above the persistence threshold becomes an empty placeholder (`numel() == 0`) with its
    full size in `ds_numel`, its shape in `ds_shape` and this rank's flat shard in `ds_tensor`; smaller
    ones persist whole but carry the same attributes (deepspeed/runtime/zero/partition_parameters.py).
    """
    for param in model.parameters():
        numel = param.numel()
        param.ds_numel, param.ds_shape = numel, param.shape
        param.ds_persist = numel <= persistence_threshold
        shard = -(-numel // world_size)
        param.ds_tensor = param.data.flatten()[:shard].clone()
        if not param.ds_persist:
            param.data = torch.empty(0, dtype=param.dtype, device=param.device)


@pytest.mark.parametrize("mode", ["vision", "full", "lora"])
def test_counts_survive_zero3_partitioning(tiny_model_dir, mode):
    """Under ZeRO-3 `numel()` is 0 on every rank: counts read `ds_numel`, as transformers and peft do."""
    from peft import get_peft_model

    from train_vlm.model import describe_trainable, lora_config

    args = tiny_model_args(tiny_model_dir, train_mode=mode)
    model, _ = load_model_and_processor(args)
    freeze_for_mode(model, mode)
    if mode == "lora":
        model = get_peft_model(model, lora_config(args))
    expected = count_parameters(model)
    partition_like_zero3(model)
    assert sum(p.numel() for p in model.parameters()) < expected["total"] // 10  # really partitioned
    assert count_parameters(model) == expected
    if mode == "lora":  # peft's own counter agrees
        assert model.get_nb_trainable_parameters() == (expected["trainable"], expected["total"])
    share = 100.0 * expected["trainable"] / expected["total"]
    assert describe_trainable(model, mode) == (
        f"train_mode={mode}: {expected['trainable']:,} of {expected['total']:,} parameters train ({share:.2f}%)"
    )


def test_describe_trainable_of_an_empty_model():
    from train_vlm.model import describe_trainable

    assert describe_trainable(torch.nn.Module(), "full").endswith("(n/a: no parameters)")


def test_stock_processor_matches_the_image_only_one(tiny_model_dir):
    """With torchvision (GPU images have it) the stock AutoProcessor is used; it must prepare exactly what
    the image-only processor prepares. Skipped where torchvision is absent (this CPU torch has none)."""
    pytest.importorskip("torchvision")
    from PIL import Image

    stock = load_processor(tiny_model_dir, min_pixels=32 * 32, max_pixels=128 * 128, local_files_only=True)
    image_only = load_processor(
        tiny_model_dir, min_pixels=32 * 32, max_pixels=128 * 128, local_files_only=True, image_only=True
    )
    assert not isinstance(stock, ImageOnlyQwen3VLProcessor)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8))
    conversation = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi"}]}]
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    a, b = stock.apply_chat_template(conversation, **kwargs), image_only.apply_chat_template(conversation, **kwargs)
    torch.testing.assert_close(a["input_ids"], b["input_ids"])
    torch.testing.assert_close(a["image_grid_thw"], b["image_grid_thw"])
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"], atol=0.05, rtol=0)  # resize kernels differ
