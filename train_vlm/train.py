"""Supervised fine-tuning of Qwen3-VL on exported records with TRL's SFTTrainer.

    python -m train_vlm.train --config train_vlm/recipes/lora.yaml --train_data /path/to/export
    accelerate launch --config_file train_vlm/accelerate/zero3.yaml -m train_vlm.train \
        --config train_vlm/recipes/vision.yaml --train_data /path/to/export

A recipe YAML sets any field of `ModelArguments`, `DataArguments`, `RunArguments` or TRL's `SFTConfig`;
command-line flags override it. The loss covers assistant tokens only: TRL swaps Qwen3-VL's chat template
for its training variant with `{% generation %}` markers and masks everything else.

A run that finds `checkpoint-*` folders in its `output_dir` resumes from the latest one (`--auto_resume
false` starts afresh). The recipes log to TensorBoard (`<output_dir>/runs/`). The output folder gets the
export's prompt set (`prompts.json`), so `evaluate` asks the tuned model in the words it was trained on.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import torch
from accelerate import PartialState
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer, TrlParser

from .data import load_export
from .model import (
    ModelArguments,
    check_mode,
    describe_trainable,
    freeze_for_mode,
    load_model_and_processor,
    lora_config,
    upcast_trainable,
)
from .prompts import find_prompt_set, write_prompt_set

logger = logging.getLogger(__name__)


@dataclass
class DataArguments:
    """Which exported records to train (and optionally evaluate loss) on."""

    train_data: str | None = field(
        default=None, metadata={"help": "Export folder (with data/train-*.parquet), Parquet file or glob."}
    )
    train_split: str = field(default="train", metadata={"help": "Shard prefix in the export's data/ folder."})
    eval_data: str | None = field(
        default=None, metadata={"help": "A second export (another seed) for eval loss (optional)."}
    )
    # `svr export` writes train-* shards only; a held-out set is another export, read with the same prefix.
    eval_split: str = field(default="train", metadata={"help": "Shard prefix of the eval export."})
    tasks: list[str] | None = field(
        default=None, metadata={"help": "Keep only these tasks (reasoning, dr_yes_no, stage, ...)."}
    )
    max_train_records: int | None = field(default=None, metadata={"help": "First N records only (smoke runs)."})


@dataclass
class RunArguments:
    """How a run scales and restarts.

    The global batch size drives gradient accumulation, so a recipe means the same on 1 or 64 GPUs.
    """

    global_batch_size: int | None = field(
        default=None,
        metadata={"help": "Effective batch = per-device batch x GPUs x accumulation; None keeps SFTConfig's."},
    )
    auto_resume: bool = field(
        default=True,
        metadata={"help": "Resume from the latest checkpoint-* in output_dir when resume_from_checkpoint is unset."},
    )


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def apply_global_batch_size(sft_config: SFTConfig, run_args: RunArguments, *, n_processes: int) -> None:
    if run_args.global_batch_size is None:
        return
    per_step = sft_config.per_device_train_batch_size * n_processes
    if run_args.global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size={run_args.global_batch_size} is not a multiple of per_device_train_batch_size "
            f"({sft_config.per_device_train_batch_size}) x processes ({n_processes}) = {per_step}"
        )
    sft_config.gradient_accumulation_steps = run_args.global_batch_size // per_step


def uses_deepspeed(sft_config: SFTConfig) -> bool:
    """DeepSpeed named in the config, or set up by `accelerate launch` with a DeepSpeed config."""
    return bool(sft_config.deepspeed) or getattr(sft_config, "deepspeed_plugin", None) is not None


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    sft_config: SFTConfig,
    run_args: RunArguments | None = None,
) -> SFTTrainer:
    """Model, processor, records and an `SFTTrainer` set up for `model_args.train_mode` (not yet trained)."""
    check_mode(model_args.train_mode)
    if data_args.train_data is None:
        raise ValueError("train_data is required: an export folder, a Parquet file or a glob")
    apply_global_batch_size(sft_config, run_args or RunArguments(), n_processes=world_size())
    # Image tokens must never be truncated away from their pixels; exported answers are short anyway.
    if sft_config.max_length is not None:
        logger.warning("max_length=%s may cut image tokens; recipes use max_length: null", sft_config.max_length)
    if not sft_config.assistant_only_loss:
        logger.warning("assistant_only_loss=False ignored: train_vlm trains on assistant tokens only")
        sft_config.assistant_only_loss = True

    model, processor = load_model_and_processor(model_args)
    freeze_for_mode(model, model_args.train_mode)
    if model_args.train_mode != "lora" and not uses_deepspeed(sft_config):  # peft keeps LoRA weights in fp32
        upcast_trainable(model)
    peft_config = lora_config(model_args) if model_args.train_mode == "lora" else None

    # The first process converts the shards into the `datasets` cache; the others then read that cache
    # instead of racing to write it.
    with PartialState().main_process_first():
        train_dataset = load_export(
            data_args.train_data,
            split=data_args.train_split,
            tasks=data_args.tasks,
            max_records=data_args.max_train_records,
        )
        eval_dataset = (
            load_export(data_args.eval_data, split=data_args.eval_split, tasks=data_args.tasks)
            if data_args.eval_data
            else None
        )
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config,
    )
    logger.info(describe_trainable(trainer.model, model_args.train_mode))
    return trainer


def resume_checkpoint(sft_config: SFTConfig, run_args: RunArguments) -> str | None:
    """The checkpoint to resume from: the one named, else the latest in output_dir (with auto_resume)."""
    if sft_config.resume_from_checkpoint:
        return sft_config.resume_from_checkpoint
    if run_args.auto_resume and os.path.isdir(sft_config.output_dir):
        return get_last_checkpoint(sft_config.output_dir)
    return None


def train(
    model_args: ModelArguments,
    data_args: DataArguments,
    sft_config: SFTConfig,
    run_args: RunArguments | None = None,
) -> SFTTrainer:
    """Train and save the model (or adapter), processor and prompt set to `sft_config.output_dir`."""
    run_args = run_args or RunArguments()
    trainer = build_trainer(model_args, data_args, sft_config, run_args)
    checkpoint = resume_checkpoint(sft_config, run_args)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(sft_config.output_dir)
    if trainer.accelerator.is_main_process:
        # Save the processor with the stock chat template so the output loads like the base checkpoint.
        trainer.processing_class.save_pretrained(sft_config.output_dir)
        prompt_set = find_prompt_set(data_args.train_data)
        if prompt_set is not None:
            write_prompt_set(prompt_set, sft_config.output_dir)
    return trainer


@torch.no_grad()
def mean_assistant_loss(model: torch.nn.Module, processor, records, *, batch_size: int = 8) -> float:
    """Mean cross-entropy over the assistant tokens of `records`, batched the way SFTTrainer batches them.

    Uses TRL's vision collator with the training chat template, so it is the loss that training minimises.
    """
    from trl.chat_template_utils import get_training_chat_template
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    collator = DataCollatorForVisionLanguageModeling(
        processor=processor, assistant_only_loss=True, chat_template=get_training_chat_template(processor)
    )
    was_training = model.training
    model.eval()
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(records), batch_size):
        batch = collator([dict(records[i]) for i in range(start, min(start + batch_size, len(records)))])
        n_tokens = int((batch["labels"][:, 1:] != -100).sum())
        total_loss += float(model(**batch).loss) * n_tokens
        total_tokens += n_tokens
    model.train(was_training)
    return total_loss / max(total_tokens, 1)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = TrlParser((ModelArguments, DataArguments, RunArguments, SFTConfig))
    model_args, data_args, run_args, sft_config = parser.parse_args_and_config(args=argv)
    trainer = train(model_args, data_args, sft_config, run_args)
    final = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    if final and not math.isfinite(final[-1]):
        raise SystemExit(f"training loss is {final[-1]}")


if __name__ == "__main__":
    main()
