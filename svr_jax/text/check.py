"""Reading the claims of a text back and comparing them with the measurements.

``claims(text)`` parses every checkable statement with regexes keyed on the vocabulary (not on the
templates), so it also reads paraphrases: FAZ area / circularity / offset, vessel densities in % with
their sector words, counts of microaneurysms and non-perfusion areas (digits or number words),
non-perfusion areas in mm² and their sectors, presence or absence of each lesion type and its sectors,
the tortuosity index and its qualifier, the eye, the field, the stage words and the ``Diagnosis:`` line,
yes/no answers and grounding boxes. ``contradictions(text, m)`` lists every claim that disagrees with
the ``Measured`` record beyond the rounding of the number as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import templates as T
from .measure import (
    CONTRAST_ADEQUATE,
    CONTRAST_GOOD,
    FAZ_ENLARGED_MM2,
    FAZ_IRREGULAR_CIRCULARITY,
    QUADRANTS,
    TORTUOSITY_INCREASED,
    Measured,
)
from .reasoning import lowest_sector, reduced_sectors

WORD_VALUE = {w: i for i, w in enumerate(T.NUMBER_WORDS)}
NUM = r"(?<![\w.])(\d+|" + "|".join(sorted(T.NUMBER_WORDS, key=len, reverse=True)) + r"|a single)(?!\w|\.\d)"
DEC = r"(?<![\d.])(\d+(?:\.\d+)?)"
LESION_WORDS = {
    "microaneurysm": r"micro-?aneurysms?|\bMAs?\b",
    "irma": r"\bIRMAs?\b|intra-?retinal microvascular abnormalit(?:y|ies)",
    "neovascularization": r"neovasculari[sz]ations?|neovascular(?: tufts?| fronds?)?|\bNVs?\b|new(?:-| )vessels?",
    "nonperfusion": r"non-?perfus(?:ion|ed)|capillary (?:drop-?out|loss)|flow voids?|ischa?emi(?:a|c)",
}
ANY_LESION = "|".join(f"(?:{v})" for v in LESION_WORDS.values())
FAZ_WORDS = r"\bFAZ\b|avascular zone|\bfovea\b"
SECTOR = r"\b(central|(superior|inferior|nasal|temporal)(?:[ -](parafoveal|perifoveal))?)\b"
NEGATION = re.compile(
    r"\b(?:no|without|neither|nor|free of|absence of|lack of)\s+(?:(?:signs?|evidence|any|detectable|visible|definite|of|areas?|regions?|zones?|capillary|focal)\s+)*"
    r"((?:" + ANY_LESION + r")(?:\s*(?:,|or|and|nor|,\s*or|,\s*and|,\s*nor|no)\s*(?:any\s+)?(?:" + ANY_LESION + r"))*)",
    re.IGNORECASE,
)
POST_NEGATION = re.compile(
    r"((?:" + ANY_LESION + r")(?:\s*(?:,|or|and)\s*(?:" + ANY_LESION + r"))*)\s+(?:is|are|was|were)\s+"
    r"(?:absent|not (?:seen|present|detected|visible|identified|found))",
    re.IGNORECASE,
)
STAGE_PATTERNS = [
    (re.compile(r"\b(mild|moderate|severe)\s+(?:non-?proliferative(?: diabetic retinopathy)?|NPDR)\b", re.I), None),
    (re.compile(r"(?<!non-)(?<!non)\bproliferative diabetic retinopathy\b|\bPDR\b", re.I), "pdr"),
    (re.compile(r"\bno (?:signs? of |evidence of )?(?:diabetic retinopathy|DR|retinopathy)\b", re.I), "normal"),
]
DIAGNOSIS = re.compile(r"diagnosis\s*[:：]\s*([^\n]*)", re.I)
REDUCTION = r"\b(?:reduced|reduction|decreased|diminished|drops?|depleted|rarefied|sparse)\b"
REDUCTION_EXCEPT = r"\b(?:lowest|no|not|without|nor|preserved|normal|than)\b"
BOX_LABELS = {"ma": "microaneurysm", "nv": "neovascularization", "non-perfusion": "nonperfusion"}  # short labels
BOX = re.compile(r"\{[^{}]*\"bbox_2d\"[^{}]*\}")


@dataclass(frozen=True)
class Claim:
    kind: str  # what is claimed (faz_area, density, ma_count, ...)
    value: object
    text: str  # the sentence it was read from
    decimals: int = 0
    sector: str | None = None


def number(token: str) -> int:
    token = token.lower()
    return 1 if token == "a single" else WORD_VALUE[token] if token in WORD_VALUE else int(token)


def decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def tolerance(d: int) -> float:
    return 0.5 * 10.0 ** (-d) + 1e-6


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\[{])|\n+", text) if s.strip()]


def lesion_type(word: str) -> str:
    for kind, pattern in LESION_WORDS.items():
        if re.fullmatch(f"(?:{pattern})", word, re.I):
            return kind
    raise ValueError(word)


def negated_types(sentence: str) -> tuple[set, list[tuple[int, int]]]:
    kinds, spans = set(), []
    for pattern in (NEGATION, POST_NEGATION):
        for match in pattern.finditer(sentence):
            spans.append(match.span())
            for word in re.finditer(ANY_LESION, match.group(1), re.I):
                kinds.add(lesion_type(word.group(0)))
    return kinds, spans


def sector_name(match: re.Match, default_ring: str | None = None) -> str:
    if match.group(1).lower() == "central":
        return "central"
    ring = match.group(3) or default_ring
    return f"{match.group(2).lower()} {ring.lower()}" if ring else match.group(2).lower()


def claims(text: str, *, task: str | None = None) -> list[Claim]:
    out: list[Claim] = []
    for s in split_sentences(text):
        out += sentence_claims(s)
    for diag in DIAGNOSIS.findall(text):  # every Diagnosis line is a claim, not only the last
        value = re.sub(r"[\s*_`\"'.,;!]+$", "", diag.strip()).strip().lower()
        stage = {v.lower(): k for k, v in T.DIAGNOSIS.items()}.get(value)
        out.append(Claim("diagnosis", stage if stage else value, diag))
    if task == "dr_yes_no":
        lead = re.match(r"^\W*(yes|no)\b", text, re.I)
        out.append(Claim("dr", None if lead is None else lead.group(1).lower() == "yes", text[:40]))
    for box in BOX.findall(text):
        try:
            obj = json.loads(box)
            out.append(Claim("box", (str(obj.get("label", "")).lower(), tuple(int(v) for v in obj["bbox_2d"])), box))
        except (ValueError, TypeError, KeyError):
            out.append(Claim("box", ("unparseable", ()), box))
    return out


def sentence_claims(s: str) -> list[Claim]:
    out: list[Claim] = []
    low = s.lower()
    has_faz = re.search(FAZ_WORDS, s, re.I) is not None
    lesion_hits = [(m.start(), lesion_type(m.group(0))) for m in re.finditer(ANY_LESION, s, re.I)]
    kinds_here = {k for _, k in lesion_hits}
    negated, neg_spans = negated_types(s)
    in_negation = lambda pos: any(a <= pos < b for a, b in neg_spans)  # noqa: E731
    present_hits = [(p, k) for p, k in lesion_hits if not in_negation(p)]
    np_present = any(k == "nonperfusion" for _, k in present_hits)

    # Field, eye, quality.
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(?:×|x|by)\s*\1\s*mm\b", s):
        out.append(Claim("fov_mm", float(m.group(1)), s, decimals(m.group(1))))
    for m in re.finditer(r"(\d+)\s*(?:×|x)\s*\1\s*(?:px|pixels)\b", s):
        out.append(Claim("size_px", int(m.group(1)), s))
    for m in re.finditer(r"\b(OD|OS)\b|\b(right|left) eye\b", s):
        out.append(Claim("laterality", m.group(1) or ("OD" if m.group(2).lower() == "right" else "OS"), s))
    for m in re.finditer(r"contrast[^\d%]{0,30}?" + DEC, s, re.I):
        out.append(Claim("contrast", float(m.group(1)), s, decimals(m.group(1))))
    m = re.search(r"\b(?:image )?quality(?: is)? (good|adequate|limited)\b|\b(good|adequate|limited) (?:image )?quality\b", s, re.I)
    if m:
        out.append(Claim("quality", (m.group(1) or m.group(2)).lower(), s))

    # FAZ (sentences about the FAZ that are not about non-perfusion).
    if has_faz and not np_present:
        for m in re.finditer(DEC + r"\s*mm(?:²|2|\^2| sq)", s):
            out.append(Claim("faz_area", float(m.group(1)), s, decimals(m.group(1))))
        for m in re.finditer(DEC + r"\s*mm (?:from|off)", s):
            out.append(Claim("faz_offset", float(m.group(1)), s, decimals(m.group(1))))
        if re.search(r"\benlarged\b|\blarge\b", low):
            out.append(Claim("faz_enlarged", True, s))
        elif re.search(r"normal (?:size|range|limits)", low):
            out.append(Claim("faz_enlarged", False, s))
    if re.search(r"circularity", low) or (has_faz and re.search(r"outline|border|contour", low)):
        for m in re.finditer(r"circularity[^\d]{0,20}?" + DEC, s, re.I):
            out.append(Claim("faz_circularity", float(m.group(1)), s, decimals(m.group(1))))
        if re.search(r"\birregular\b", low):
            out.append(Claim("faz_irregular", True, s))
        elif re.search(r"\bregular\b|\bround\b", low):
            out.append(Claim("faz_irregular", False, s))

    # Vessel density: every percentage, attributed to the nearest preceding sector word (else overall).
    if "%" in s:
        sectors = list(re.finditer(SECTOR, s, re.I))
        overall = list(re.finditer(r"\b(?:overall|whole|entire|global|all sectors)\b", s, re.I))
        for m in re.finditer(DEC + r"\s*%", s):
            before = [x for x in sectors if x.end() <= m.start()]
            last_overall = max((x.end() for x in overall if x.end() <= m.start()), default=-1)
            if before and before[-1].end() > last_overall:
                sector = sector_name(before[-1], "parafoveal")
            else:
                sector = "overall"
            out.append(Claim("density", float(m.group(1)), s, decimals(m.group(1)), sector))
    m = re.search(r"lowest (?:value )?in the " + SECTOR, s, re.I)
    if m:
        out.append(Claim("density_lowest", sector_name(m, "parafoveal"), s))
    # A reduction word and sector words in one clause (in any order: "reduced in the superior sector",
    # "the superior sector shows markedly reduced density"); not in a negated or comparative clause, nor
    # where a lesion is named (lesion sectors are checked as lesion claims).
    for clause in re.split(r"[;(]|,(?=\s*(?:the\s+)?lowest)|\b(?:while|whereas|but)\b", s):
        if re.search(REDUCTION, clause, re.I) and not re.search(REDUCTION_EXCEPT, clause, re.I) and not re.search(ANY_LESION, clause, re.I):
            for x in re.finditer(SECTOR, clause, re.I):
                out.append(Claim("density_reduced", sector_name(x, "parafoveal"), s))
    # Not a number: a NaN or infinite measurement printed into the text.
    for m in re.finditer(r"(?<![\w.])[-+]?(nan|inf(?:inity)?)(?![\w])", s, re.I):
        out.append(Claim("non_number", m.group(0), s))

    # Lesions: absence, presence, counts, sectors, areas.
    for kind in negated:
        out.append(Claim("absent", kind, s))
    for kind in {k for _, k in present_hits} - negated:
        out.append(Claim("present", kind, s))
    for m in re.finditer(SECTOR, s, re.I):
        preceding = [k for p, k in present_hits if p < m.start()]
        if preceding and not re.search(r"%", s[m.end(): m.end() + 8]):
            out.append(Claim("sector", preceding[-1], s, sector=sector_name(m)))
    for m in re.finditer(NUM + r"\s+(?:[a-z-]+\s+){0,2}?micro-?aneurysms?\b", s, re.I):
        out.append(Claim("ma_count", number(m.group(1)), s))
    for m in re.finditer(r"(?:microaneurysm count|(?:number|count) of microaneurysms)(?: is| of|:)?\s*" + NUM, s, re.I):
        out.append(Claim("ma_count", number(m.group(1)), s))
    if np_present:
        for m in re.finditer(NUM + r"\s+(?:[a-z-]+\s+){0,3}?(?:areas?|regions?|zones?|patches|patch|foci)\b", s, re.I):
            out.append(Claim("np_count", number(m.group(1)), s))
        if not has_faz:
            for m in re.finditer(DEC + r"\s*mm(?:²|2|\^2| sq)", s):
                out.append(Claim("np_area", float(m.group(1)), s, decimals(m.group(1))))
            for m in re.finditer(DEC + r"\s*mm(?:²|2|\^2| sq)\s+(?:\w+\s+){0,2}?in the " + SECTOR, s):
                out.append(Claim("np_area_at", float(m.group(1)), s, decimals(m.group(1)), sector_name(_sector_at(m))))

    # Tortuosity.
    if "tortuos" in low:
        for m in re.finditer(r"tortuosity index[^\d]{0,25}?" + DEC, s, re.I):
            out.append(Claim("tortuosity_index", float(m.group(1)), s, decimals(m.group(1))))
        if re.search(r"\bincreased\b|\belevated\b|\babnormal\b|\bare tortuous\b", low):
            out.append(Claim("tortuous", True, s))
        elif re.search(r"\bnormal\b", low):
            out.append(Claim("tortuous", False, s))

    # Stage words.
    for pattern, stage in STAGE_PATTERNS:
        for m in pattern.finditer(s):
            if re.match(r"\s*diagnosis", s, re.I):
                continue
            out.append(Claim("stage", stage or m.group(1).lower(), s))
    return out


def _sector_at(match: re.Match) -> re.Match:
    return re.search(SECTOR, match.group(0), re.I)


def _near(claim: Claim, measured: float) -> bool:
    return abs(float(claim.value) - measured) <= tolerance(claim.decimals)


def _sector_ok(claimed: str, actual: set) -> bool:
    if " " in claimed or claimed == "central":
        return claimed in actual
    return any(a.split(" ")[0] == claimed for a in actual)


def contradictions(text: str, m: Measured, *, task: str | None = None) -> list[str]:
    """Every claim of ``text`` that disagrees with ``m`` (empty list: the text is consistent)."""
    bad = []
    lesions = {k: m.of(k) for k in LESION_WORDS}
    np_areas = [l.area_mm2 for l in m.nonperfusion] + [m.nonperfusion_mm2]
    for c in claims(text, task=task):
        why = None
        if c.kind == "fov_mm" and not _near(c, m.fov_mm):
            why = f"field {c.value} mm, measured {m.fov_mm}"
        elif c.kind == "size_px" and c.value != m.size_px:
            why = f"size {c.value} px, measured {m.size_px}"
        elif c.kind == "laterality" and c.value != m.laterality:
            why = f"eye {c.value}, measured {m.laterality}"
        elif c.kind == "contrast" and not _near(c, m.contrast):
            why = f"contrast {c.value}, measured {m.contrast:.4f}"
        elif c.kind == "quality":
            actual = "good" if m.contrast >= CONTRAST_GOOD else "adequate" if m.contrast >= CONTRAST_ADEQUATE else "limited"
            why = None if c.value == actual else f"quality {c.value}, measured {actual}"
        elif c.kind == "faz_area" and not _near(c, m.faz_area_mm2):
            why = f"FAZ area {c.value} mm², measured {m.faz_area_mm2:.4f}"
        elif c.kind == "faz_offset" and not _near(c, m.faz_offset_mm):
            why = f"FAZ offset {c.value} mm, measured {m.faz_offset_mm:.4f}"
        elif c.kind == "faz_enlarged" and c.value != (m.faz_area_mm2 >= FAZ_ENLARGED_MM2):
            why = f"FAZ {'enlarged' if c.value else 'normal'}, measured {m.faz_area_mm2:.3f} mm²"
        elif c.kind == "faz_circularity" and not _near(c, m.faz_circularity):
            why = f"circularity {c.value}, measured {m.faz_circularity:.4f}"
        elif c.kind == "faz_irregular" and c.value != (m.faz_circularity < FAZ_IRREGULAR_CIRCULARITY):
            why = f"FAZ {'irregular' if c.value else 'regular'}, measured circularity {m.faz_circularity:.3f}"
        elif c.kind == "density":
            actual = m.density_pct if c.sector == "overall" else m.sector_density_pct.get(c.sector)
            if actual is None:
                why = f"density of unreported sector {c.sector!r}"
            elif not _near(c, actual):
                why = f"{c.sector} density {c.value}%, measured {actual:.2f}%"
        elif c.kind == "density_lowest" and c.value != lowest_sector(m):
            why = f"lowest density in {c.value}, measured {lowest_sector(m)}"
        elif c.kind == "density_reduced" and c.value not in reduced_sectors(m):
            why = f"density reduced in {c.value}, measured reduced: {reduced_sectors(m)}"
        elif c.kind == "absent" and lesions[c.value]:
            why = f"no {c.value} claimed, measured {len(lesions[c.value])}"
        elif c.kind == "present" and not lesions[c.value]:
            why = f"{c.value} claimed, none measured"
        elif c.kind == "sector" and not _sector_ok(c.sector, {l.sector for l in lesions[c.value]}):
            why = f"{c.value} in {c.sector}, measured in {sorted({l.sector for l in lesions[c.value]})}"
        elif c.kind == "ma_count" and c.value != len(m.microaneurysms):
            why = f"{c.value} microaneurysms, measured {len(m.microaneurysms)}"
        elif c.kind == "np_count" and c.value != len(m.nonperfusion):
            why = f"{c.value} non-perfusion areas, measured {len(m.nonperfusion)}"
        elif c.kind == "np_area" and not any(abs(c.value - a) <= tolerance(c.decimals) for a in np_areas):
            why = f"non-perfusion area {c.value} mm², measured {[round(a, 4) for a in np_areas]}"
        elif c.kind == "np_area_at" and not any(
            abs(c.value - l.area_mm2) <= tolerance(c.decimals) and _sector_ok(c.sector, {l.sector}) for l in m.nonperfusion
        ):
            why = f"non-perfusion {c.value} mm² in {c.sector}: no such area measured"
        elif c.kind == "tortuosity_index" and not _near(c, m.tortuosity_index):
            why = f"tortuosity index {c.value}, measured {m.tortuosity_index:.4f}"
        elif c.kind == "tortuous" and c.value != (m.tortuosity_index >= TORTUOSITY_INCREASED):
            why = f"tortuosity {'increased' if c.value else 'normal'}, measured index {m.tortuosity_index:.4f}"
        elif c.kind in ("stage", "diagnosis") and c.value != m.stage:
            why = f"{c.kind} {c.value!r}, measured {m.stage}"
        elif c.kind == "dr" and c.value != bool(m.label_dr):
            why = f"DR answer {c.value}, measured stage {m.stage}"
        elif c.kind == "non_number":
            why = f"{c.value!r} is not a measurement"
        elif c.kind == "box":
            label, box = c.value
            kind = BOX_LABELS.get(label, label)
            if kind not in lesions or not any(tuple(l.bbox_rel) == box for l in lesions[kind]):
                why = f"box {label} {list(box)} matches no measured lesion"
        if why:
            bad.append(f"{why} [{c.text.strip()[:90]}]")
    if task == "grounding":  # the answer lists every lesion of its label: a dropped box is a contradiction too
        listed: dict[str, int] = {}
        for c in claims(text, task=task):
            if c.kind == "box":
                kind = BOX_LABELS.get(c.value[0], c.value[0])
                listed[kind] = listed.get(kind, 0) + 1
        for kind, count in listed.items():
            if kind in lesions and count != len(lesions[kind]):
                bad.append(f"{count} {kind} boxes, measured {len(lesions[kind])}")
    return bad


def final_line_parses(text: str) -> bool:
    """The last line is ``Diagnosis: <X>`` with X one of the five canonical values."""
    lines = text.strip().splitlines()
    if not lines:
        return False
    m = re.fullmatch(r"Diagnosis: (.+)", lines[-1].strip())
    return m is not None and m.group(1) in T.DIAGNOSIS.values()
