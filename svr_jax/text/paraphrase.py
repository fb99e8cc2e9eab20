"""Optional paraphrasing of template texts through a local Hugging Face text model (off by default).

``Paraphraser(generate)`` rewrites a text with any callable ``str -> str`` and keeps the rewrite only
if ``check.contradictions`` finds nothing wrong in it *and* its last line is still the canonical
``Diagnosis: <X>``; otherwise the template text is returned. ``from_pretrained(path)`` builds the
callable from transformers' text-generation pipeline with ``local_files_only=True`` (no network;
transformers is imported only then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .check import contradictions, final_line_parses
from .measure import Measured

INSTRUCTION = (
    "Rewrite the following OCTA report in different words. Keep every number, unit, sector name, count and "
    "the stage exactly; keep the order; keep the last line unchanged.\n\nReport:\n{text}\n\nRewritten report:\n"
)


@dataclass
class Paraphraser:
    generate: Callable[[str], str]
    accepted: int = 0
    rejected: int = 0
    last_reasons: list = field(default_factory=list)

    def __call__(self, text: str, m: Measured, *, task: str | None = None) -> str:
        """The paraphrase of ``text`` if it passes the check, else ``text`` itself."""
        try:
            candidate = self.generate(text).strip()
        except Exception as error:  # a model failure must never lose the sample: keep the template
            self.rejected += 1
            self.last_reasons = [f"generator failed: {error!r}"]
            return text
        reasons = contradictions(candidate, m, task=task)
        if task in (None, "reasoning") and not final_line_parses(candidate):
            reasons.append("final line is not 'Diagnosis: <X>'")
        if not candidate:
            reasons.append("empty")
        if reasons:
            self.rejected += 1
            self.last_reasons = reasons
            return text
        self.accepted += 1
        self.last_reasons = []
        return candidate


def from_pretrained(model_path: str, *, max_new_tokens: int = 512, device: str | int | None = None) -> Callable[[str], str]:
    """A ``str -> str`` generator from a local model folder (``local_files_only=True``, greedy decoding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True)
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, device=device)

    def generate(text: str) -> str:
        prompt = INSTRUCTION.format(text=text)
        out = pipe(prompt, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False)
        return out[0]["generated_text"]

    return generate
