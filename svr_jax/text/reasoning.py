"""Grounded, staged reasoning text from measured findings.

``families(m)`` lists the sentence families that fire for a ``Measured`` record, in the reasoning order
(field and quality -> FAZ -> perfusion -> non-perfusion -> microaneurysms -> IRMA / NV -> tortuosity ->
impression); it is deterministic and reads measured values only. ``reasoning(rng, m)`` picks one
phrasing per family with the seeded ``rng`` and ends with the fixed line ``Diagnosis: <X>``. Wording
varies with the seed; facts never do.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from . import templates as T
from .measure import (
    CONTRAST_ADEQUATE,
    CONTRAST_GOOD,
    DENSITY_REDUCED_RATIO,
    FAZ_ENLARGED_MM2,
    FAZ_IRREGULAR_CIRCULARITY,
    MILD_MAX_MICROANEURYSMS,
    TORTUOSITY_INCREASED,
    Measured,
    grade,
)

EYE = {"OD": "right eye (OD)", "OS": "left eye (OS)"}
Rng = np.random.Generator


def rng_of(seed_or_rng) -> Rng:
    return seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)


# --- number formatting (the precision check.py's tolerance follows) --------------------------------

def fmt_area(x: float) -> str:
    return f"{x:.2f}" if x >= 0.095 else f"{x:.3f}"


def fmt_pct(x: float) -> str:
    return f"{x:.1f}"


def count_text(n: int, rng: Rng) -> str:
    return T.NUMBER_WORDS[n] if n < len(T.NUMBER_WORDS) and rng.random() < 0.5 else str(n)


def join(items: list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sector_list(sectors: list[str]) -> str:
    """'superior parafoveal sector' / 'superior parafoveal and nasal perifoveal sectors'."""
    unique = list(dict.fromkeys(sectors))
    return join(unique) + (" sectors" if len(unique) > 1 else " sector")


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# --- sentence families ------------------------------------------------------------------------------

def quality_family(m: Measured) -> str:
    return "quality.good" if m.contrast >= CONTRAST_GOOD else "quality.adequate" if m.contrast >= CONTRAST_ADEQUATE else "quality.limited"


def faz_families(m: Measured) -> list[str]:
    size = "faz.enlarged" if m.faz_area_mm2 >= FAZ_ENLARGED_MM2 else "faz.normal"
    shape = "faz.irregular" if m.faz_circularity < FAZ_IRREGULAR_CIRCULARITY else "faz.regular"
    return [size, shape, "faz.offset"]


def reduced_sectors(m: Measured) -> list[str]:
    """Ring sectors whose density is below DENSITY_REDUCED_RATIO of the median ring sector."""
    ring = {k: v for k, v in m.sector_density_pct.items() if k != "central"}
    if len(ring) < 2:
        return []
    median = float(np.median(list(ring.values())))
    return [k for k, v in ring.items() if v < DENSITY_REDUCED_RATIO * median]


def lowest_sector(m: Measured) -> str | None:
    ring = {k: v for k, v in m.sector_density_pct.items() if k != "central"}
    return min(ring, key=ring.get) if ring else None


def density_families(m: Measured) -> list[str]:
    out = ["density.overall"]
    if m.sector_density_pct:
        out.append("density.sectors")
    if lowest_sector(m) is not None:
        out.append("density.reduced" if reduced_sectors(m) else "density.uniform")
    return out


def tortuosity_family(m: Measured) -> str:
    return "tortuosity.increased" if m.tortuosity_index >= TORTUOSITY_INCREASED else "tortuosity.normal"


def families(m: Measured) -> list[str]:
    """The families that fire for ``m``, in reasoning order (a function of measured values only)."""
    out = ["field", quality_family(m), *faz_families(m), *density_families(m)]
    out.append("np.present" if m.nonperfusion else "np.none")
    out.append("ma.present" if m.microaneurysms else "ma.none")
    if not m.irma and not m.neovascularization:
        out.append("irma_nv.none")
    else:
        out.append("irma.present" if m.irma else "irma.none")
        out.append("nv.present" if m.neovascularization else "nv.none")
    out.append(tortuosity_family(m))
    out.append("impression.normal" if m.stage == "normal" else "impression.dr")
    return out


# --- evidence of the grade -----------------------------------------------------------------------------

def evidence(m: Measured, rng: Rng) -> str:
    """The measured findings that decided the grade, as a phrase (no stage word in it)."""
    stage, keys = grade(m)
    n_ma, n_np = len(m.microaneurysms), len(m.nonperfusion)
    ma = f"{count_text(n_ma, rng)} {plural(n_ma, 'microaneurysm', 'microaneurysms')}"
    np_part = f"non-perfusion ({count_text(n_np, rng)} {plural(n_np, 'area', 'areas')}, {fmt_area(m.nonperfusion_mm2)} mm² in total)"
    if stage == "normal":
        return rng.choice([
            "no microaneurysms, non-perfusion, IRMA or neovascularization are present",
            "there are no microaneurysms, no non-perfusion, no IRMA and no neovascularization",
        ])
    if stage == "mild":
        return f"{ma} without non-perfusion, IRMA or neovascularization"
    if stage == "moderate":
        parts = []
        if n_np:
            parts.append(np_part)
        if n_ma:
            parts.append(ma + (f" (more than {MILD_MAX_MICROANEURYSMS})" if "many_microaneurysms" in keys else ""))
        return join(parts) + " without IRMA or neovascularization"
    if stage == "severe":
        parts = []
        if m.irma:
            parts.append(f"IRMA in the {sector_list([l.sector for l in m.irma])}")
        if "extensive_nonperfusion" in keys:
            parts.append("extensive " + np_part)
        elif n_np:
            parts.append(np_part)
        return join(parts) + " without neovascularization"
    return f"neovascularization in the {sector_list([l.sector for l in m.neovascularization])}"


def values(m: Measured, rng: Rng) -> dict:
    """Placeholder values (formatted measured numbers) shared by all families."""
    stage = m.stage
    sectors = ", ".join(f"{k} {fmt_pct(v)}%" for k, v in m.sector_density_pct.items())
    reduced = reduced_sectors(m)
    return dict(
        fov=f"{m.fov_mm:g}", size=m.size_px, eye=EYE[m.laterality], contrast=f"{m.contrast:.3f}",
        area=f"{m.faz_area_mm2:.3f}", circ=f"{m.faz_circularity:.2f}", offset=f"{m.faz_offset_mm:.2f}",
        density=fmt_pct(m.density_pct), sectors=sectors, lowest=lowest_sector(m) or "",
        reduced=join(reduced), low=fmt_pct(m.sector_density_pct.get(lowest_sector(m), 0.0)), s_reduced="s" if len(reduced) > 1 else "",
        index=f"{m.tortuosity_index:.4f}", stage_text=T.STAGE_TEXT[stage], stage_short=T.STAGE_SHORT[stage],
    )


def lesion_values(lesions: tuple, rng: Rng, one: str, many: str, word: str) -> dict:
    n = len(lesions)
    count = count_text(n, rng)
    return {"count": count, "Count": cap(count), "sectors": sector_list([l.sector for l in lesions]),
            "are": plural(n, "is", "are"), "is": plural(n, "is", "are"), word: plural(n, one, many),
            "lesions": plural(n, "lesion", "lesions")}


def fill(family: str, template: str, m: Measured, rng: Rng, base: dict) -> str:
    v = dict(base)
    if family == "np.present":
        regions = [f"{fmt_area(l.area_mm2)} mm² in the {l.sector} sector" for l in m.nonperfusion]
        n = len(m.nonperfusion)
        count = count_text(n, rng)
        v.update(count=count, Count=cap(count), areas=plural(n, "area", "areas"), are=plural(n, "is", "are"),
                 regions=join(regions), total=fmt_area(m.nonperfusion_mm2))
    elif family == "ma.present":
        v.update(lesion_values(m.microaneurysms, rng, "microaneurysm", "microaneurysms", "microaneurysms"))
    elif family == "irma.present":
        v.update(lesion_values(m.irma, rng, "abnormality", "abnormalities", "abnormalities"))
    elif family == "nv.present":
        v.update(lesion_values(m.neovascularization, rng, "tuft", "tufts", "tufts"))
    elif family.startswith("impression"):
        v.update(evidence=evidence(m, rng))
    return template.format(**v)


def sentences(seed_or_rng, m: Measured) -> list[tuple[str, str]]:
    """[(family, sentence)] of the full reasoning, without the final line."""
    rng = rng_of(seed_or_rng)
    base = values(m, rng)
    out = []
    for family in families(m):
        template = T.FAMILIES[family][int(rng.integers(len(T.FAMILIES[family])))]
        out.append((family, fill(family, template, m, rng, base)))
    return out


def diagnosis_line(m: Measured) -> str:
    return f"Diagnosis: {T.DIAGNOSIS[m.stage]}"


def reasoning(seed_or_rng, m: Measured) -> str:
    """The full staged reasoning text; the last line is ``Diagnosis: <X>``."""
    parts = sentences(seed_or_rng, m)
    stages = [("field", "quality"), ("faz",), ("density",), ("np", "ma", "irma", "nv"), ("tortuosity",), ("impression",)]
    paragraphs = []
    for prefixes in stages:
        group = [(f, s) for f, s in parts if f.split(".")[0] in prefixes or f.split("_")[0] in prefixes]
        if group:
            paragraphs.append(_merge(group))
    return "\n".join(paragraphs + [diagnosis_line(m)])


MERGED = ("field", "quality", "faz", "density", "np.none", "ma.none", "irma_nv.none")


def _merge(group: list[tuple[str, str]]) -> str:
    """Join a stage's sentences; the short ones of one stage (and the absences) become one sentence."""
    out = []
    for family, sentence in group:
        mergeable = family.startswith(MERGED) or family in MERGED
        if out and mergeable and out[-1][0] and out[-1][1].endswith("."):
            prev = out[-1][1][:-1]
            lower = sentence[:1].lower() + sentence[1:] if sentence[1:2].islower() else sentence
            out[-1] = (True, f"{prev}; {lower}")
        else:
            out.append((mergeable, sentence))
    return " ".join(s for _, s in out)


def family_counts(texts_families: list[list[str]]) -> Counter:
    return Counter(f for fams in texts_families for f in fams)
