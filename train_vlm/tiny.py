"""A tiny, randomly initialised Qwen3-VL with its own tokenizer and image processor.

Tests (and anyone without hub access) need a model folder that loads through exactly the same code path
as `Qwen/Qwen3-VL-8B-Instruct`: `config.json` + weights, a tokenizer with Qwen's special tokens, a
`preprocessor_config.json` for the Qwen2-VL image processor and Qwen3-VL's stock chat template. Everything
here is built offline: the tokenizer is a byte-level BPE trained on a small built-in corpus, so any text
round-trips, and the chat template is the copy that TRL ships for Qwen3-VL.

    python -m train_vlm.tiny /tmp/tiny-qwen3vl
"""

from __future__ import annotations

import argparse
import importlib.resources
from collections.abc import Iterable
from pathlib import Path

# The special tokens Qwen3-VL's processor and chat template look up by name.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

LM_HEAD_SCALE = 8.0

# Words the exported records use, so that BPE merges make their text short in tokens (fast tests).
_BUILTIN_CORPUS = (
    "Diagnosis: normal",
    "Diagnosis: mild NPDR",
    "Diagnosis: moderate NPDR",
    "Diagnosis: severe NPDR",
    "Diagnosis: PDR",
    "Yes No Yes, No,",
    "Does this OCTA image show diabetic retinopathy? Answer Yes or No.",
    "Describe the retinal vasculature in this OCTA image and give the diagnosis.",
    "Look at this optical coherence tomography angiography image of the superficial capillary plexus.",
    "The foveal avascular zone is enlarged and irregular. Capillary dropout and non-perfusion areas are seen.",
    "Microaneurysms are present near the fovea. Neovascularization is visible. Vessel density is reduced.",
    "How many microaneurysms are visible? There are 0 1 2 3 4 5 6 7 8 9 microaneurysms.",
    "What is the stage of diabetic retinopathy? The stage is mild, moderate, severe or proliferative.",
    "Where is the lesion? The bounding box is (12, 34), (56, 78) in a 3 mm or 6 mm field of view.",
)


def _training_corpus(extra_texts: Iterable[str]) -> list[str]:
    # Repeating the built-in lines gives BPE enough pair counts to merge whole words.
    return list(_BUILTIN_CORPUS) * 8 + list(extra_texts)


def qwen3_vl_chat_template() -> str:
    """Qwen3-VL's stock chat template, as shipped (read offline) inside the installed TRL package.

    It has no `{% generation %}` markers, exactly like the real checkpoint: TRL recognises it and swaps in
    its training variant for assistant-only loss, so the tiny model goes through the same path as the 8B.
    """
    return (importlib.resources.files("trl") / "chat_templates" / "qwen3_vl.jinja").read_text()


def build_tokenizer(*, vocab_size: int = 384, extra_texts: Iterable[str] = ()):
    """A byte-level BPE tokenizer with Qwen's special tokens; `<|im_end|>` ends a turn, like Qwen3-VL."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_corpus(extra_texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=qwen3_vl_chat_template(),
    )


def build_image_processor(*, min_pixels: int = 32 * 32, max_pixels: int = 128 * 128):
    """Qwen3-VL's image preprocessing (16 px patches, 2x2 merge, mean/std 0.5) on the PIL backend."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )


def build_config(tokenizer, *, text_hidden_size: int = 64, vision_hidden_size: int = 32):
    """A Qwen3-VL config a few hundred thousand parameters large, with the same module layout as the 8B."""
    from transformers import Qwen3VLConfig

    token_id = tokenizer.convert_tokens_to_ids
    head_dim = 16
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden_size,
        intermediate_size=2 * text_hidden_size,
        num_hidden_layers=2,
        num_attention_heads=text_hidden_size // head_dim,
        num_key_value_heads=max(1, text_hidden_size // head_dim // 2),
        head_dim=head_dim,
        max_position_embeddings=4096,
        # The 8B uses mrope_section [24, 20, 20] for head_dim 128; the sections must add up to head_dim / 2.
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[4, 2, 2], mrope_interleaved=True),
        pad_token_id=token_id("<|endoftext|>"),
        bos_token_id=None,
        eos_token_id=token_id("<|im_end|>"),
    )
    vision_config = dict(
        depth=2,
        hidden_size=vision_hidden_size,
        intermediate_size=2 * vision_hidden_size,
        num_heads=2,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=text_hidden_size,
        num_position_embeddings=64,  # an 8x8 learned grid, resampled to each image's patch grid
        deepstack_visual_indexes=[0],
    )
    return Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def build_tiny_qwen3_vl(
    output_dir: str | Path,
    *,
    seed: int = 0,
    extra_texts: Iterable[str] = (),
    min_pixels: int = 32 * 32,
    max_pixels: int = 128 * 128,
) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (model, tokenizer, image processor, chat template) to a folder.

    Load it back with `train_vlm.model.load_model_and_processor(output_dir)`; nothing touches the hub.
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(extra_texts=extra_texts)
    image_processor = build_image_processor(min_pixels=min_pixels, max_pixels=max_pixels)
    config = build_config(tokenizer)

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    # At the default init (std 0.02) a 64-wide head can only produce logits within about +-1.3, so no
    # amount of training below it could make a confident prediction. A trained checkpoint's head is far
    # larger; scaling it gives the tiny model peaked outputs to learn towards in every train mode.
    with torch.no_grad():
        model.lm_head.weight.mul_(LM_HEAD_SCALE)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    image_processor.save_pretrained(output_dir)
    (output_dir / "chat_template.jinja").write_text(qwen3_vl_chat_template())
    return output_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_qwen3_vl(args.output_dir, seed=args.seed))


if __name__ == "__main__":
    main()
