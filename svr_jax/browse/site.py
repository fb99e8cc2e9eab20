"""``build(export folder)``: the static browser site at ``<export>/browser/``.

Layout (every path relative to ``browser/``; opened from ``file://``, no server, nothing fetched from
the network):

* ``index.html`` (Jinja2 template), ``static/`` (the page's CSS and JS), ``meta.js`` (facet
  vocabularies and counts, overlay styles, page count);
* ``pages/p00000.js`` ...: the grid index, ``page_size`` rows a file, columnar, categorical values as
  codes into ``meta.js``'s vocabularies;
* ``a/0000/`` ...: per sample (1,000 a folder) the image, a JPEG thumbnail, one sprite PNG of every
  overlay (masks, lesion instances, sector map; ``meta.bands`` names its bands) and ``<stem>.js``, the
  sample's record.

Chromium forbids ``fetch()`` of ``file://`` URLs, so every data file is a script that registers its data
(``SVR.addPage(...)``, ``SVR.addSample(...)``) and the page loads it with a ``<script>`` tag when needed.

The site is written to a temporary folder and renamed into place when complete, so a failed build
leaves the previous site (or nothing) behind.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..pathology import LESION_NAMES, STAGES
from . import layers, sample
from .source import ExportSource, iter_rows, open_export

FACETS = ("stage", "field", "eye", "task")


@dataclasses.dataclass(frozen=True)
class BrowseConfig:
    page_size: int = 2000  # grid rows per index file
    thumb_px: int = 128  # thumbnail side
    workers: int = 2  # threads encoding images (Pillow and numpy release the GIL)


@dataclasses.dataclass(frozen=True)
class BrowseReport:
    site: Path
    rows: int
    pages: int
    seconds: float
    bytes: int
    files: int


class _Index:
    """Grid rows accumulated into columnar pages with categorical codes."""

    def __init__(self):
        self.vocab = {f: [] for f in FACETS}
        self.vocab["stage"] = list(STAGES)  # severity order, not order of appearance
        self.counts = {f: {} for f in FACETS}
        self.rows = []

    def code(self, facet: str, value: str) -> int:
        vocab = self.vocab[facet]
        if value not in vocab:
            vocab.append(value)
        self.counts[facet][value] = self.counts[facet].get(value, 0) + 1
        return vocab.index(value)

    def add(self, entry: dict) -> None:
        self.rows.append(entry)

    def page(self) -> dict:
        rows, self.rows = self.rows, []
        columns = dict(index=[r["index"] for r in rows], id=[r["id"] for r in rows])
        for f in FACETS:
            columns[f] = [self.code(f, r[f]) for r in rows]
        columns["counts"] = [[r["counts"][t] for t in LESION_NAMES] for r in rows]
        return columns


def _script(call: str, *args) -> str:
    return f"{call}({','.join(json.dumps(a, separators=(',', ':')) for a in args)});\n".replace("</", "<\\/")


def _overlay_styles(source: ExportSource) -> list[dict]:
    out = []
    for position, column in enumerate(source.mask_columns):
        name = column[len("mask_"):]
        label, group, colour = layers.style(name, position)
        out.append(dict(key=name, label=label, group=group, colour=colour))
    return out


def _copy_static(site: Path) -> None:
    static = site / "static"
    static.mkdir(parents=True)
    for name in ("browser.js", "browser.css"):
        (static / name).write_bytes(resources.files(__package__).joinpath("static", name).read_bytes())


def _render_index(site: Path, source: ExportSource, meta: dict) -> None:
    env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(["html", "j2"]))
    manifest = source.manifest
    html = env.get_template("index.html.j2").render(
        title=f"svr export {source.folder.name}", rows=meta["rows"], manifest=manifest, overlays=meta["overlays"],
        lesion_types=meta["lesion_types"], facets=FACETS, vocab=meta["vocab"], facet_counts=meta["facet_counts"],
        card_exists=(source.folder / "README.md").is_file(),
    )
    (site / "index.html").write_text(html)


def _bounded_map(pool, fn, items, in_flight: int):
    """``pool.map(fn, items)`` in order, with at most ``in_flight`` items submitted at once
    (``Executor.map`` takes the whole iterator up front: every row's bytes in memory)."""
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _disk_usage(folder: Path) -> tuple[int, int]:
    total = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            total += os.path.getsize(os.path.join(root, name))
            files += 1
    return total, files


def build(folder: Path | str, config: BrowseConfig = BrowseConfig(), *, progress=None) -> BrowseReport:
    """Write ``<folder>/browser/`` from the export at ``folder`` (checked first: ValueError, nothing written)."""
    started = time.perf_counter()
    source = open_export(folder)
    if config.page_size < 1 or config.thumb_px < 8 or config.workers < 1:
        raise ValueError("browse: page_size >= 1, thumb_px >= 8 and workers >= 1 are required")
    final = source.folder / "browser"
    site = source.folder / f".browser.tmp-{os.getpid()}"
    shutil.rmtree(site, ignore_errors=True)
    try:
        site.mkdir()
        _copy_static(site)
        (site / "pages").mkdir()
        index, pages = _Index(), 0

        def flush() -> None:
            nonlocal pages
            (site / "pages" / f"p{pages:05d}.js").write_text(_script("SVR.addPage", pages, index.page()))
            pages += 1

        def one(row: dict) -> dict:
            return sample.render(row, site, thumb_px=config.thumb_px, mask_columns=source.mask_columns)

        rows = 0
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            for entry in _bounded_map(pool, one, iter_rows(source), 4 * config.workers):
                index.add(entry)
                rows += 1
                if len(index.rows) == config.page_size:
                    flush()
                if progress is not None:
                    progress(1)
        if index.rows or pages == 0:
            flush()
        meta = dict(
            rows=rows, pages=pages, page_size=config.page_size, vocab=index.vocab, facet_counts=index.counts,
            lesion_types=list(LESION_NAMES), overlays=_overlay_styles(source), bands=sample.bands(source.mask_columns),
            instance_colours=list(layers.INSTANCE_COLOURS), export=source.folder.name,
        )
        (site / "meta.js").write_text(f"window.SVR = window.SVR || {{}};\nSVR.meta = {json.dumps(meta, separators=(',', ':'))};\n")
        _render_index(site, source, meta)
        old = source.folder / f".browser.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        site.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(site, ignore_errors=True)
        raise
    size, files = _disk_usage(final)
    return BrowseReport(site=final, rows=rows, pages=pages, seconds=time.perf_counter() - started, bytes=size, files=files)
