"""Merge a LoRA adapter into its base Qwen3-VL and save a standalone checkpoint (with the processor).

    python -m train_vlm.merge_lora --adapter out/lora --output_dir out/lora-merged

The merged folder loads like any checkpoint (`AutoModelForImageTextToText`, vLLM, `train_vlm.evaluate`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, HfArgumentParser

from .model import load_processor

logger = logging.getLogger(__name__)


@dataclass
class MergeArguments:
    adapter: str = field(metadata={"help": "Folder with adapter_config.json and the adapter weights."})
    output_dir: str = field(metadata={"help": "Where the merged checkpoint goes."})
    base_model: str | None = field(
        default=None, metadata={"help": "Defaults to the adapter's base_model_name_or_path."}
    )
    dtype: str = field(default="bfloat16", metadata={"help": "dtype to load the base in and save."})
    local_files_only: bool = False


def merge_lora(args: MergeArguments) -> Path:
    from peft import PeftModel

    adapter = Path(args.adapter)
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{adapter} has no adapter_config.json: it is not a peft adapter folder")
    base = args.base_model or json.loads(config_path.read_text())["base_model_name_or_path"]
    model = AutoModelForImageTextToText.from_pretrained(
        base, dtype=getattr(torch, args.dtype), local_files_only=args.local_files_only
    )
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    output_dir = Path(args.output_dir)
    merged.save_pretrained(output_dir)
    # The adapter folder carries the processor when train_vlm trained it; otherwise take the base's.
    has_processor = (adapter / "tokenizer_config.json").is_file()
    load_processor(str(adapter) if has_processor else base, local_files_only=args.local_files_only).save_pretrained(
        output_dir
    )
    logger.info("merged %s into %s -> %s", adapter, base, output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    (args,) = HfArgumentParser(MergeArguments).parse_args_into_dataclasses(args=argv)
    return merge_lora(args)


if __name__ == "__main__":
    main()
