"""One export row -> its files on the site (image, thumbnail, overlays, record script) and its index entry.

What the text claims is read back with the text checker's own parsers (``text.check``): the grounding
boxes (0-1000 grid) and the sector names, so the page draws exactly what the checker reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..pathology import LESION_NAMES
from ..text import check
from ..text.measure import from_dict, grade
from . import layers

ETDRS_SHORT = {"superior": "S", "inferior": "I", "nasal": "N", "temporal": "T"}
RING_NUMBER = {"parafoveal": 1, "perifoveal": 2}


def asset_dir(index: int) -> str:
    """Site-relative folder of sample ``index``'s files (1,000 samples a folder)."""
    return f"a/{index // 1000:04d}"


def bands(mask_columns: tuple[str, ...]) -> list[str]:
    """The overlay sprite's bands, top to bottom."""
    return [c[len("mask_"):] for c in mask_columns] + ["instances", "sectors"]


def file_stem(index: int) -> str:
    """Files of sample ``index`` are named ``<stem>.<what>`` (the page derives the same from the index)."""
    return f"{index:07d}"


def sector_short(name: str) -> str:
    """ETDRS-style short name: central -> C, 'superior parafoveal' -> S1, 'nasal perifoveal' -> N2."""
    if name == "central":
        return "C"
    quadrant, ring = name.split(" ")
    return f"{ETDRS_SHORT[quadrant]}{RING_NUMBER[ring]}"


def assistant_text(messages: list) -> str:
    return "\n".join(part["text"] or "" for m in messages if m["role"] == "assistant" for part in m["content"])


def text_boxes(text: str) -> list[dict]:
    """The grounding boxes the text states (the checker's parse), on the 0-1000 grid."""
    if "bbox_2d" not in text:  # the full claim parse costs ms a text; only box JSON can hold boxes
        return []
    return [dict(label=c.value[0], box=list(c.value[1])) for c in check.claims(text) if c.kind == "box" and len(c.value[1]) == 4]


def named_sectors(text: str) -> set:
    """Full sector names the text mentions ('central', 'superior parafoveal', ...)."""
    names = {check.sector_name(m) for m in re.finditer(check.SECTOR, text, re.I)}
    return {n for n in names if n == "central" or " " in n}


def render(row: dict, site: Path, *, thumb_px: int, mask_columns: tuple[str, ...]) -> dict:
    """Write sample ``row``'s files under ``site`` and return its index entry (plain values)."""
    index, sample_id = int(row["index"]), str(row["id"])
    stem = file_stem(index)
    folder = site / asset_dir(index)
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.loads(row["metadata"])
    measured = from_dict(meta["measured"])
    image_png = row["images"][0]["bytes"]
    (folder / f"{stem}.png").write_bytes(image_png)
    (folder / f"{stem}.t.jpg").write_bytes(layers.thumbnail_jpeg(image_png, thumb_px))

    masks = {c[len("mask_"):]: layers.decode(row[c]) for c in mask_columns if row.get(c)}
    shape = (measured.size_px, measured.size_px)
    sprite = layers.Sprite(shape)  # bands in the order of ``bands(mask_columns)``
    overlays = []
    for position, column in enumerate(mask_columns):
        name = column[len("mask_"):]
        mask = masks.get(name, np.zeros(shape, np.uint8))
        sprite.mask(mask, layers.style(name, position)[2])
        overlays.append(dict(key=name, pixels=int((mask > 0).sum())))
    labels, instances = layers.instance_labels({n: masks[n] for n in LESION_NAMES if n in masks})
    sprite.instances(labels)

    text = assistant_text(row["messages"])
    named = named_sectors(text)
    sectors = []
    layout = {}
    if "faz" in masks:
        nasal_sign = 1.0 if measured.laterality == "OD" else -1.0
        layout = layers.sector_layout(masks["faz"], measured.fov_mm, nasal_sign)
        for name, mask in layout.items():
            x, y = layers.centroid_fraction(mask)
            sectors.append(dict(name=name, short=sector_short(name), x=x, y=y, named=name in named,
                                density_pct=measured.sector_density_pct.get(name)))
    sprite.sectors(layout, named)
    (folder / f"{stem}.o.png").write_bytes(sprite.png())

    counts = {t: len(measured.of(t)) for t in LESION_NAMES}
    stage, evidence = grade(measured)
    record = dict(
        id=sample_id, index=index, task=row["task"], stage=row["stage"], graded_stage=stage, evidence=list(evidence),
        intended_stage=meta.get("intended_stage"), laterality=measured.laterality, fov=meta.get("fov"),
        fov_mm=float(row["fov_mm"]), size_px=measured.size_px, instances=instances,
        messages=[dict(role=m["role"], parts=[dict(type=p["type"], text=p["text"]) for p in m["content"]]) for m in row["messages"]],
        text_boxes=text_boxes(text),
        lesions=[dict(type=l.type, sector=l.sector, area_mm2=l.area_mm2, bbox_rel=list(l.bbox_rel)) for l in measured.lesions],
        measured=dict(
            contrast=measured.contrast, faz_area_mm2=measured.faz_area_mm2, faz_circularity=measured.faz_circularity,
            faz_offset_mm=measured.faz_offset_mm, density_pct=measured.density_pct, tortuosity_index=measured.tortuosity_index,
            **{f"{t}_count": n for t, n in counts.items()}, nonperfusion_mm2=measured.nonperfusion_mm2,
        ),
        stats=meta.get("stats", {}), overlays=overlays, sectors=sectors,
    )
    payload = json.dumps(record, separators=(",", ":")).replace("</", "<\\/")
    (folder / f"{stem}.js").write_text(f"SVR.addSample({index},{payload});\n")
    return dict(id=sample_id, index=index, stage=row["stage"], field=meta.get("fov") or f"{row['fov_mm']:g}mm",
                eye=measured.laterality, task=row["task"], counts=counts)
