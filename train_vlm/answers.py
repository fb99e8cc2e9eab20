"""Turning a model's free-text answer into a diagnosis.

Exported reasoning answers end with a last line `Diagnosis: <X>`, X one of `normal`, `mild NPDR`,
`moderate NPDR`, `severe NPDR`, `PDR`; DR yes/no answers start with `Yes` or `No`. The parser reads the
last `Diagnosis:` line (DR = anything but normal), else a leading Yes/No; anything else is unparseable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Canonical diagnosis text (as exported) -> stage name (as in the export's `stage` column).
DIAGNOSIS_TO_STAGE: dict[str, str] = {
    "normal": "normal",
    "mild npdr": "mild",
    "moderate npdr": "moderate",
    "severe npdr": "severe",
    "pdr": "pdr",
}
# Phrasings of "no DR" a base model may use after `Diagnosis:`; without these, "DR = anything but normal"
# would read "Diagnosis: no diabetic retinopathy" as DR.
NORMAL_SYNONYMS = ("normal", "no dr", "no diabetic retinopathy", "no retinopathy", "healthy", "none")

_DIAGNOSIS_LINE = re.compile(r"diagnosis\s*[:：]\s*(?P<value>[^\n]*)", re.IGNORECASE)
_LEADING_YES_NO = re.compile(r"^\W*(?P<word>yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer says. `dr` is None when the answer is unparseable."""

    dr: bool | None
    stage: str | None  # one of DIAGNOSIS_TO_STAGE's values, when the diagnosis names one
    source: str  # "diagnosis", "yes_no" or "unparseable"
    diagnosis_text: str | None = None  # the text after the last `Diagnosis:`

    @property
    def parseable(self) -> bool:
        return self.dr is not None


def parse_answer(answer: str) -> ParsedAnswer:
    """Parse `answer` (see module docstring)."""
    matches = list(_DIAGNOSIS_LINE.finditer(answer))
    if matches:
        value = matches[-1].group("value").strip()
        normalized = re.sub(r"[\s*_`\"'.,;!]+$", "", value.lower()).strip(" *_`\"'")
        normalized = re.sub(r"\s+", " ", normalized)
        if normalized:
            stage = DIAGNOSIS_TO_STAGE.get(normalized)
            is_normal = stage == "normal" or normalized.startswith(NORMAL_SYNONYMS)
            return ParsedAnswer(
                dr=not is_normal, stage="normal" if is_normal else stage, source="diagnosis", diagnosis_text=value
            )
    leading = _LEADING_YES_NO.match(answer)
    if leading:
        return ParsedAnswer(dr=leading.group("word").lower() == "yes", stage=None, source="yes_no")
    return ParsedAnswer(dr=None, stage=None, source="unparseable")
