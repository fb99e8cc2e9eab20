"""Instruction-tuning conversations in TRL's vision chat form, one per (sample, task).

Record: ``{"images": [image], "messages": [user: [image part, text part], assistant: [text part]],
"task", "stage", "label_dr"}``; ``stage`` and ``label_dr`` are the *measured* grade (``measure.grade``),
which the export keeps only where it equals the intended stage. Tasks: full reasoning (ends with
``Diagnosis: <X>``), DR yes/no (starts with Yes / No), stage, microaneurysm count, grounding (boxes
on Qwen-VL's relative 0-1000 grid, ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``) and caption.
"""

from __future__ import annotations

import json

from . import templates as T
from .measure import Measured
from .reasoning import cap, count_text, evidence, fmt_area, fmt_pct, plural, reasoning, rng_of, sector_list

TASKS = ("reasoning", "dr_yes_no", "stage", "count_ma", "grounding", "caption")
# Default weights of TASKS in an export: half the records carry the full staged reasoning, the rest
# spread evenly over the short tasks.
DEFAULT_TASK_MIXTURE = (0.5, 0.1, 0.1, 0.1, 0.1, 0.1)
LESION_LABELS = ("microaneurysm", "nonperfusion", "irma", "neovascularization")

PROMPTS: dict[str, tuple[str, ...]] = {
    "reasoning": (
        "Read this OCTA scan step by step and grade the diabetic retinopathy.",
        "Describe the findings of this OCTA image in order and give a diagnosis.",
        "You are a retina specialist. Assess this en-face OCTA angiogram systematically: quality, FAZ, "
        "perfusion, lesions, then your impression. End with 'Diagnosis: ...'.",
        "Walk me through this OCTA: what do you see, and what DR stage does it show?",
        "Analyse the foveal avascular zone, vessel density and any lesions in this OCTA, then stage the retinopathy.",
        "Give a structured OCTA report for this image, ending with the diagnosis.",
    ),
    "dr_yes_no": (
        "Does this OCTA show diabetic retinopathy? Answer yes or no.",
        "Is there any diabetic retinopathy in this image?",
        "Yes or no: signs of DR in this OCTA scan?",
        "Is this eye affected by diabetic retinopathy?",
    ),
    "stage": (
        "What is the diabetic retinopathy stage of this OCTA?",
        "Grade this scan: normal, mild, moderate or severe NPDR, or PDR?",
        "Which DR severity level does this OCTA image show?",
        "Classify the retinopathy in this angiogram.",
    ),
    "count_ma": (
        "How many microaneurysms are visible in this OCTA?",
        "Count the microaneurysms in this image.",
        "What is the microaneurysm count?",
    ),
    "grounding": (
        "Locate every {label} in this OCTA and give bounding boxes as JSON.",
        "Find all {label_plural} in the image; output [{{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"{label}\"}}] with coordinates from 0 to 1000.",
        "Outline the {label_plural} with boxes.",
        "Where are the {label_plural}? Answer with bounding boxes.",
    ),
    "caption": (
        "Write a one-sentence caption for this OCTA image.",
        "Caption this scan briefly.",
        "Summarise this OCTA in one line.",
    ),
}
LABEL_PLURAL = {"microaneurysm": "microaneurysms", "nonperfusion": "non-perfusion areas", "irma": "IRMA lesions",
                "neovascularization": "neovascular tufts"}
LABEL_TEXT = {"microaneurysm": "microaneurysm", "nonperfusion": "non-perfusion area", "irma": "IRMA lesion",
              "neovascularization": "neovascular tuft"}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _short_values(m: Measured, rng) -> dict:
    stage = m.stage
    ev = evidence(m, rng)
    return dict(
        fov=f"{m.fov_mm:g}", eye={"OD": "right eye (OD)", "OS": "left eye (OS)"}[m.laterality],
        area=fmt_area(m.faz_area_mm2), density=fmt_pct(m.density_pct), evidence=ev,
        stage_text=T.STAGE_TEXT[stage], Stage_text=cap(T.STAGE_TEXT[stage]), stage_short=T.STAGE_SHORT[stage],
        Stage_short=cap(T.STAGE_SHORT[stage]), Stage_short_cap=cap(T.STAGE_SHORT[stage]),
    )


def boxes_json(m: Measured, label: str) -> str:
    return json.dumps([{"bbox_2d": list(l.bbox_rel), "label": label} for l in m.of(label)])


def answer(task: str, seed_or_rng, m: Measured, *, label: str = "microaneurysm") -> str:
    """The assistant's answer for ``task`` (a function of the seed and ``m`` only)."""
    rng = rng_of(seed_or_rng)
    if task == "reasoning":
        return reasoning(rng, m)
    v = _short_values(m, rng)
    if task == "dr_yes_no":
        return _pick(rng, T.YES_NO["yes" if m.label_dr else "no"]).format(**v)
    if task == "stage":
        return _pick(rng, T.STAGE_ANSWER).format(**v)
    if task == "count_ma":
        n = len(m.microaneurysms)
        if n == 0:
            return _pick(rng, T.COUNT_MA["none"])
        count = count_text(n, rng)
        return _pick(rng, T.COUNT_MA["some"]).format(
            count=count, Count_digit=str(n), are=plural(n, "is", "are"),
            microaneurysms=plural(n, "microaneurysm", "microaneurysms"), sectors=sector_list([l.sector for l in m.microaneurysms]))
    if task == "grounding":
        return boxes_json(m, label) if m.of(label) else _pick(rng, T.GROUNDING_EMPTY)
    if task == "caption":
        return _pick(rng, T.CAPTIONS["caption.normal" if m.stage == "normal" else "caption.dr"]).format(**v)
    raise ValueError(f"unknown task {task!r}; valid: {list(TASKS)}")


def prompt(task: str, seed_or_rng, *, label: str = "microaneurysm") -> str:
    rng = rng_of(seed_or_rng)
    return _pick(rng, PROMPTS[task]).format(label=LABEL_TEXT[label], label_plural=LABEL_PLURAL[label])


def task_prompts(task: str) -> list[str]:
    """Every prompt ``task`` can draw, grounding prompts filled in for each lesion label, in template order."""
    out = []
    for p in PROMPTS[task]:
        labels = LESION_LABELS if "{label" in p else ("microaneurysm",)
        out += [p.format(label=LABEL_TEXT[x], label_plural=LABEL_PLURAL[x]) for x in labels]
    return list(dict.fromkeys(out))


def all_prompts() -> list[str]:
    return sorted({p for task in PROMPTS for p in task_prompts(task)})


def conversation(image, task: str, seed: int, m: Measured) -> dict:
    """One TRL vision conversation record (see module docstring). ``image``: a PIL image or path."""
    rng = rng_of(seed)
    label = LESION_LABELS[int(rng.integers(len(LESION_LABELS)))] if task == "grounding" else "microaneurysm"
    if task == "grounding" and m.lesions and not m.of(label):  # prefer a lesion type that is there
        label = next(l for l in LESION_LABELS if m.of(l))
    return {
        "images": [image],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt(task, rng, label=label)}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer(task, rng, m, label=label)}]},
        ],
        "task": task,
        "stage": m.stage,
        "label_dr": m.label_dr,
    }


def conversations(image, seed: int, m: Measured, tasks=TASKS) -> list[dict]:
    """One record per task, seeds derived from ``seed``."""
    return [conversation(image, task, seed * len(TASKS) + i, m) for i, task in enumerate(tasks)]
