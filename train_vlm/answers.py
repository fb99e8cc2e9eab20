"""Turning a model's free-text answer into a DR call (and a stage where the answer names one).

Read in this order, the first that decides wins:

1. the last `Diagnosis:` line (the exported reasoning answers end with `Diagnosis: <X>`; markdown
   emphasis such as `**Diagnosis**: Normal` is stripped first);
2. a leading `Yes` / `No` followed by punctuation or the end (`Yes.`, `No,`, `No —`): the exported
   yes/no answers. `No microaneurysms are seen.` is not a No: the word must stand alone;
3. the first mention of diabetic retinopathy in the text (`mild NPDR`, `proliferative diabetic
   retinopathy (PDR)`, `DR`, ...), which is read as "no DR" when a negation opens its clause (`no signs
   of diabetic retinopathy`, `negative for DR`, `without diabetic retinopathy`) or closes it (`DR is
   absent`);
4. words that call the whole scan normal (`normal`, `unremarkable`, `healthy`, `no DR`).

Anything else is unparseable (e.g. the exported microaneurysm counts and bounding boxes, which make no
call). The parser never sees the image or the label: it only reads text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STAGES: tuple[str, ...] = ("normal", "mild", "moderate", "severe", "pdr")

# A mention of diabetic retinopathy, most specific first so that `mild non-proliferative diabetic
# retinopathy` is one mention (stage mild), not a generic one. `proliferative` alone must not match
# inside `non-proliferative`.
_NPDR = r"(?:npdr|non[- ]?proliferative(?:\s+diabetic\s+retinopathy)?(?:\s*\(\s*\w+\s+npdr\s*\))?)"
_STAGE_PATTERNS: tuple[tuple[str | None, str], ...] = (
    ("mild", rf"mild\s+{_NPDR}"),
    ("moderate", rf"moderate\s+{_NPDR}"),
    ("severe", rf"severe\s+{_NPDR}"),
    ("pdr", r"(?<![\w-])(?<!non )proliferative\s+diabetic\s+retinopathy(?:\s*\(\s*pdr\s*\))?|\bpdr\b"),
    (None, rf"{_NPDR}|diabetic\s+retinopathy|\bdr\b|\bretinopathy\b"),
)
_MENTION = re.compile(
    "|".join(f"(?P<s{i}>{pattern})" for i, (_, pattern) in enumerate(_STAGE_PATTERNS)), re.IGNORECASE
)
# A negation covers a mention only from within the same clause and at most this many words before it
# (NegEx's window), so "without IRMA or neovascularization, consistent with severe NPDR" stays severe NPDR.
NEGATION_WINDOW_WORDS = 6
# A clause ends at punctuation (commas too), a dash, or a contrast word.
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\n—–]|\s-\s|\b(?:but|however|although|though|whereas)\b", re.IGNORECASE)
_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|without|negative\s+for|absence\s+of|absent|free\s+of|nor|neither|never|cannot\s+see|"
    r"rules?\s+out|ruled\s+out|excludes?|excluded)\b|n't\b",
    re.IGNORECASE,
)
_NEGATION_AFTER = re.compile(
    r"^\s*(?:(?:is|are|was|were)\s+)?(?:absent|not\s+(?:present|seen|visible|evident|detected|shown|identified)|"
    r"negative|ruled\s+out|excluded)\b|^\s*[:=]\s*(?:no|none|absent|negative)\b",
    re.IGNORECASE,
)
_NORMAL_WORDS = re.compile(
    r"\b(?:normal|unremarkable|healthy|healthy-looking|within\s+normal\s+limits|no\s+abnormalit(?:y|ies))\b",
    re.IGNORECASE,
)
_DIAGNOSIS_LINE = re.compile(r"diagnosis\s*[:：]\s*(?P<value>[^\n]*)", re.IGNORECASE)
_LEADING_YES_NO = re.compile(r"^\W*(?P<word>yes|no)\b(?=\s*(?:$|[.,;:!—–-]))", re.IGNORECASE)
_MARKDOWN = re.compile(r"(\*\*|__|\*|`|^#+\s*|^\s*[-•>]\s+)", re.MULTILINE)


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer says. `dr` is None when the answer is unparseable."""

    dr: bool | None
    stage: str | None  # one of STAGES when the answer names one (normal whenever dr is False)
    source: str  # "diagnosis", "yes_no", "mention", "normal_words" or "unparseable"
    diagnosis_text: str | None = None  # the text after the last `Diagnosis:`

    @property
    def parseable(self) -> bool:
        return self.dr is not None


@dataclass(frozen=True)
class Mention:
    stage: str | None  # None: DR named without a stage
    negated: bool
    start: int


def strip_markdown(text: str) -> str:
    """`**Diagnosis**: Normal` -> `Diagnosis: Normal`; list bullets, headers and code ticks go too."""
    return _MARKDOWN.sub("", text)


def _negated(text: str, start: int, end: int) -> bool:
    before = text[:start]
    clause_start = max((m.end() for m in _CLAUSE_BREAK.finditer(before)), default=0)
    window = " ".join(before[clause_start:].split()[-NEGATION_WINDOW_WORDS:])
    if _NEGATION_BEFORE.search(window):
        return True
    after = text[end:]
    return bool(_NEGATION_AFTER.match(after))


def mentions(text: str) -> list[Mention]:
    """Every mention of diabetic retinopathy in `text`, in order, with its stage and polarity."""
    found = []
    for match in _MENTION.finditer(text):
        index = next(i for i, group in enumerate(match.groups()) if group is not None)
        found.append(Mention(_STAGE_PATTERNS[index][0], _negated(text, match.start(), match.end()), match.start()))
    return found


def _call(text: str) -> tuple[bool, str | None, str] | None:
    """(dr, stage, source) from the first DR mention, else from words that call the scan normal.

    A first mention without a stage (`diabetic retinopathy (moderate NPDR)`) takes the stage of the next
    affirmed mention that has one.
    """
    found = mentions(text)
    if found:
        first = found[0]
        if first.negated:
            return False, "normal", "mention"
        stage = first.stage or next((m.stage for m in found[1:] if m.stage and not m.negated), None)
        return True, stage, "mention"
    if _NORMAL_WORDS.search(text):
        return False, "normal", "normal_words"
    return None


def parse_answer(answer: str) -> ParsedAnswer:
    """Parse `answer` (see the module docstring for the order of the rules)."""
    text = strip_markdown(answer)
    lines = list(_DIAGNOSIS_LINE.finditer(text))
    if lines:
        value = lines[-1].group("value").strip()
        call = _call(value)
        if call is not None:
            return ParsedAnswer(dr=call[0], stage=call[1], source="diagnosis", diagnosis_text=value)
    leading = _LEADING_YES_NO.match(text)
    if leading:
        dr = leading.group("word").lower() == "yes"
        rest = _call(text[leading.end() :])
        # The stage comes from the rest of the answer only when it agrees with the Yes / No.
        stage = rest[1] if rest is not None and rest[0] == dr else ("normal" if not dr else None)
        return ParsedAnswer(dr=dr, stage=stage, source="yes_no")
    call = _call(text)
    if call is not None:
        return ParsedAnswer(dr=call[0], stage=call[1], source=call[2])
    return ParsedAnswer(dr=None, stage=None, source="unparseable")
