"""The fixed split of the real development eyes into a *fit* half and a *held-out* half.

A realism figure is only evidence when the thing fitted never saw it: ``svr fit`` reads the fit half
only, and ``benchmarks/realism.py`` measures on the held-out half. The split is a committed file of ids
(``svr_jax/data/octa500_split.json``: ids only, no images or labels) and the pure function that made it,
so anyone holding the same ``labels.csv`` re-derives it exactly (``python scripts/make_split.py``).

How it is made (``derive_split``): the eyes are grouped into strata by field (``scan_mm``) and
diagnosis (``disease``); within a stratum they are ordered by the SHA-256 of ``SALT + id`` (a fixed
pseudo-random order that depends on nothing but the id: no library version, no RNG, no row order), and
the first ``ceil(n / 2)`` go to the fit half, the rest to the held-out half. Every stratum is split
as evenly as it can be (the fit half gets the odd eye).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Iterable

SALT = "svr-octa500-split-v1:"
HALVES = ("fit", "heldout")
SPLIT_FILE = "octa500_split.json"


@dataclasses.dataclass(frozen=True)
class Split:
    fit: frozenset[str]
    heldout: frozenset[str]

    def __post_init__(self):
        both = self.fit & self.heldout
        if both:
            raise ValueError(f"split: ids in both halves: {sorted(both)[:10]}")

    def half_of(self, eye_id: str) -> str | None:
        """"fit", "heldout", or None for an eye the split does not know."""
        return "fit" if eye_id in self.fit else "heldout" if eye_id in self.heldout else None

    def ids(self, half: str) -> frozenset[str]:
        if half not in HALVES:
            raise ValueError(f"split half must be one of {HALVES}, got {half!r}")
        return self.fit if half == "fit" else self.heldout


def stratum(row: dict) -> tuple[float, str]:
    """(field in mm, diagnosis) of a labels.csv row: what the halves are balanced over."""
    return float(row["scan_mm"]), str(row["disease"]).strip().upper()


def _order_key(eye_id: str) -> str:
    return hashlib.sha256((SALT + eye_id).encode()).hexdigest()


def derive_split(rows: Iterable[dict]) -> Split:
    """labels.csv rows (``id``, ``scan_mm``, ``disease``) -> the split (see the module docstring)."""
    strata: dict[tuple, list[str]] = defaultdict(list)
    seen = set()
    for row in rows:
        eye_id = str(row["id"]).strip()
        if eye_id in seen:
            raise ValueError(f"split: id {eye_id} appears twice")
        seen.add(eye_id)
        strata[stratum(row)].append(eye_id)
    fit, heldout = set(), set()
    for ids in strata.values():
        ordered = sorted(ids, key=_order_key)
        cut = math.ceil(len(ordered) / 2)
        fit.update(ordered[:cut])
        heldout.update(ordered[cut:])
    return Split(fit=frozenset(fit), heldout=frozenset(heldout))


def to_json(split: Split) -> str:
    """The file's text: one line per half (ids only), so a changed split reads as a one-line diff."""
    lines = [
        '{"about": "OCTA-500 development eyes, ids only. svr fit reads fit; realism figures use heldout. '
        'Made by svr_jax.split.derive_split (scripts/make_split.py).",',
        f' "salt": {json.dumps(SALT)},',
        f' "fit": {json.dumps(sorted(split.fit, key=_id_sort))},',
        f' "heldout": {json.dumps(sorted(split.heldout, key=_id_sort))}}}',
    ]
    return "\n".join(lines) + "\n"


def _id_sort(eye_id: str):
    return (0, int(eye_id), "") if eye_id.isdigit() else (1, 0, eye_id)


def read_split(path: str | Path) -> Split:
    data = json.loads(Path(path).read_text())
    return Split(fit=frozenset(map(str, data["fit"])), heldout=frozenset(map(str, data["heldout"])))


def committed_split() -> Split:
    """The split committed with the package."""
    return read_split(resources.files("svr_jax") / "data" / SPLIT_FILE)


def select(rows: list[dict], half: str | None, split: Split | None = None) -> list[dict]:
    """The rows (dicts with ``id``) of one half; ``half=None``: all rows, unfiltered.

    A folder that shares no id with the split is another data set, to which the split does not apply:
    its rows are returned as they are. A folder that shares some ids but also holds eyes the split does
    not know is an error (a stale split, or new eyes added): they would otherwise be read by the fit
    and by the held-out evaluation alike.
    """
    if half is None:
        return rows
    split = committed_split() if split is None else split
    wanted = split.ids(half)
    known = [r for r in rows if split.half_of(str(r["id"])) is not None]
    if not known:
        return rows
    unknown = [str(r["id"]) for r in rows if split.half_of(str(r["id"])) is None]
    if unknown:
        raise ValueError(
            f"ids {unknown[:8]}{' ...' if len(unknown) > 8 else ''} are in neither half of the split ({SPLIT_FILE}); "
            "re-derive it (scripts/make_split.py) or read every eye on purpose (split=none)"
        )
    return [r for r in rows if str(r["id"]) in wanted]
