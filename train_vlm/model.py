"""Loading Qwen3-VL and its processor, and choosing which parameters train.

Three modes:

- `lora`: LoRA adapters (peft) on the language model's linear layers; everything else frozen.
- `vision`: the published SVR recipe — the vision tower and its mergers train, the language model and
  `lm_head` stay frozen.
- `full`: every parameter trains.

The processor is the stock `AutoProcessor` when torchvision is importable. Without torchvision (the CPU
torch wheel here has none) transformers' Qwen3-VL processor cannot be built, because it insists on a
torchvision video processor; then an image-only processor with the same tokenizer, PIL image processor
and chat template is used. Images come out identical up to resize interpolation; videos are unsupported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available

logger = logging.getLogger(__name__)

TRAIN_MODES: tuple[str, ...] = ("lora", "vision", "full")

# Qwen3-VL module names (transformers >= 5): model.visual (.blocks, .merger, .deepstack_merger_list),
# model.language_model, lm_head.
VISION_PREFIX = "model.visual."
LANGUAGE_PREFIXES = ("model.language_model.", "lm_head.")
# The language model's linear layers: attention and MLP projections. Matched as a regex so that the
# vision tower's own `qkv`/`proj`/`linear_fc*` layers never get adapters.
LORA_TARGET_REGEX = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass
class ModelArguments:
    """Which checkpoint to load, how, and what to train."""

    model_name_or_path: str = field(
        default="Qwen/Qwen3-VL-8B-Instruct", metadata={"help": "Hub id or local folder of a Qwen3-VL checkpoint."}
    )
    train_mode: str = field(default="lora", metadata={"help": f"One of {TRAIN_MODES}."})
    dtype: str = field(default="bfloat16", metadata={"help": "bfloat16, float16 or float32."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "e.g. sdpa or flash_attention_2; None lets transformers choose."}
    )
    local_files_only: bool = field(
        default=False, metadata={"help": "Never reach the hub (HF_HUB_OFFLINE=1 does the same globally)."}
    )
    # Pixel budget per image. OCTA-500 scans are 304x304 (3 mm) and 400x400 (6 mm); with these bounds they
    # are only rounded to a multiple of 32 px (patch 16 x merge 2), i.e. fed at their native size.
    image_min_pixels: int | None = field(default=256 * 256, metadata={"help": "Lower pixel bound per image."})
    image_max_pixels: int | None = field(default=1024 * 1024, metadata={"help": "Upper pixel bound per image."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (lora mode)."})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA scale numerator (lora mode)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (lora mode)."})
    lora_target_modules: str = field(
        default=LORA_TARGET_REGEX, metadata={"help": "Regex of module names that get LoRA adapters."}
    )


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL's processor without the video processor (which needs torchvision).

    Same tokenizer, image processor and chat template; text with `<|image_pad|>` expands exactly as in
    `Qwen3VLProcessor`. Passing videos raises.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # Qwen3VLProcessor.__init__ would pass a third (video) sub-processor, so set its fields here and
        # call ProcessorMixin directly: its sub-processors come from this signature.
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.vision_start_token = getattr(tokenizer, "vision_start_token", None) or "<|vision_start|>"
        self.vision_end_token = getattr(tokenizer, "vision_end_token", None) or "<|vision_end|>"
        self.vision_start_token_id = tokenizer.convert_tokens_to_ids(self.vision_start_token)
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids(self.vision_end_token)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Record the stock class, so a machine with torchvision loads the folder with plain AutoProcessor.
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        config_path = Path(save_directory) / "processor_config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text())
            config["processor_class"] = "Qwen3VLProcessor"
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return saved

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise ValueError("ImageOnlyQwen3VLProcessor handles images only; install torchvision for videos.")
        return super().__call__(images=images, text=text, **kwargs)


def _pixel_bounds(min_pixels: int | None, max_pixels: int | None) -> dict:
    size = {}
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
    return {"size": size} if size else {}


def load_processor(
    model_name_or_path: str | Path,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    local_files_only: bool = False,
    image_only: bool | None = None,
) -> ProcessorMixin:
    """The model's processor with the given pixel budget. `image_only=None` picks by torchvision presence."""
    path = str(model_name_or_path)
    kwargs = dict(local_files_only=local_files_only, **_pixel_bounds(min_pixels, max_pixels))
    if image_only is None:
        image_only = not is_torchvision_available()
    if not image_only:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    image_processor = AutoImageProcessor.from_pretrained(path, backend="pil", **kwargs)
    chat_template = _read_chat_template(path, tokenizer, local_files_only=local_files_only)
    return ImageOnlyQwen3VLProcessor(image_processor, tokenizer, chat_template=chat_template)


def _read_chat_template(path: str, tokenizer, *, local_files_only: bool) -> str | None:
    """The processor's chat template: `chat_template.jinja`, else legacy `chat_template.json`, else the tokenizer's."""
    from huggingface_hub import hf_hub_download

    for filename in ("chat_template.jinja", "chat_template.json"):
        local = Path(path) / filename
        if not local.is_file() and not Path(path).is_dir():
            try:
                local = Path(hf_hub_download(path, filename, local_files_only=local_files_only))
            except Exception:  # absent in this repo: try the next name
                continue
        if local.is_file():
            text = local.read_text()
            if filename.endswith(".json"):
                text = json.loads(text)["chat_template"]
            return text
    return tokenizer.chat_template


def load_model(args: ModelArguments) -> torch.nn.Module:
    """The Qwen3-VL model in the requested dtype (no parameters frozen yet; see `freeze_for_mode`)."""
    dtype = getattr(torch, args.dtype)
    kwargs = dict(dtype=dtype, local_files_only=args.local_files_only)
    if args.attn_implementation:
        kwargs["attn_implementation"] = args.attn_implementation
    return AutoModelForImageTextToText.from_pretrained(args.model_name_or_path, **kwargs)


def load_model_and_processor(args: ModelArguments) -> tuple[torch.nn.Module, ProcessorMixin]:
    processor = load_processor(
        args.model_name_or_path,
        min_pixels=args.image_min_pixels,
        max_pixels=args.image_max_pixels,
        local_files_only=args.local_files_only,
    )
    return load_model(args), processor


def check_mode(mode: str) -> str:
    if mode not in TRAIN_MODES:
        raise ValueError(f"train_mode={mode!r} is not one of {TRAIN_MODES}")
    return mode


def freeze_for_mode(model: torch.nn.Module, mode: str) -> None:
    """Set `requires_grad` for full or vision mode. LoRA mode is left to peft (it freezes the base model)."""
    check_mode(mode)
    if mode == "lora":
        return
    names = [name for name, _ in model.named_parameters()]
    if not any(name.startswith(VISION_PREFIX) for name in names):
        raise ValueError(f"No parameter starts with {VISION_PREFIX!r}: is this a Qwen3-VL model? ({names[:3]}...)")
    for name, param in model.named_parameters():
        param.requires_grad = mode == "full" or name.startswith(VISION_PREFIX)


def upcast_trainable(model: torch.nn.Module) -> int:
    """Keep the trainable parameters of a bf16/fp16 model in fp32; returns how many were cast.

    Without DeepSpeed nothing keeps fp32 master weights: AdamW steps of lr 1e-5 on bf16 weights (8-bit
    mantissa) mostly round away. With the trained parameters in fp32 and `bf16: true` (autocast) the
    frozen language model stays in bf16 and the vision tower trains as mixed precision. DeepSpeed keeps
    its own fp32 masters, so callers skip this under it.
    """
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            cast += 1
    return cast


def lora_config(args: ModelArguments):
    """peft LoRA on the language model only (the vision tower stays frozen in lora mode)."""
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def parameter_count(param: torch.nn.Parameter) -> int:
    """Elements of a parameter, also when DeepSpeed ZeRO-3 has partitioned it.

    ZeRO-3 leaves each rank an empty placeholder (`numel() == 0`) and records the full size in `ds_numel`;
    transformers' and peft's own counters read it the same way.
    """
    count = param.numel()
    if count == 0 and hasattr(param, "ds_numel"):
        return int(param.ds_numel)
    return count


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    trainable = sum(parameter_count(p) for p in model.parameters() if p.requires_grad)
    total = sum(parameter_count(p) for p in model.parameters())
    return {"trainable": trainable, "total": total}


def describe_trainable(model: torch.nn.Module, mode: str) -> str:
    """`train_mode=vision: 1,234 of 5,678 parameters train (21.73%)`, also on a partitioned or empty model."""
    counts = count_parameters(model)
    share = f"{100.0 * counts['trainable'] / counts['total']:.2f}%" if counts["total"] else "n/a: no parameters"
    return f"train_mode={mode}: {counts['trainable']:,} of {counts['total']:,} parameters train ({share})"
