"""``svr browse <export folder>``: a static, offline browser site at ``<export>/browser/index.html``.

    svr browse out/export
    svr browse out/export page_size=5000 workers=4

Reads the shards and the manifest of an ``svr export`` (after ``svr export verify``'s checks), never
regenerates; see ``svr_jax.browse``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

BARE_WORD = "export"  # `svr browse FOLDER` = `svr browse export=FOLDER`


@dataclasses.dataclass
class BrowseSchema:
    export: str = "???"  # the export folder (holds manifest.json and data/)
    page_size: int = 2000  # grid rows per index file
    thumb_px: int = 128
    workers: int = 2  # image-encoding threads


SCHEMA = BrowseSchema  # registered by the CLI as "browse_schema" (conf/browse.yaml defaults)


@dataclasses.dataclass(frozen=True)
class BrowseJob:
    folder: Path
    config: object  # svr_jax.browse.BrowseConfig


def parse(cfg) -> BrowseJob:
    from ..browse import BrowseConfig

    return BrowseJob(folder=Path(cfg.export), config=BrowseConfig(page_size=int(cfg.page_size), thumb_px=int(cfg.thumb_px),
                                                                  workers=int(cfg.workers)))


def run(job: BrowseJob) -> None:
    from tqdm import tqdm

    from ..browse import build, open_export

    rows = open_export(job.folder).rows  # checked before the progress bar opens
    with tqdm(total=rows, unit="pair", desc="browse") as bar:
        report = build(job.folder, job.config, progress=bar.update)
    print(f"browse: {report.rows} pairs, {report.pages} index page(s), {report.files} files, {report.bytes / 1e6:.1f} MB"
          f" in {report.seconds:.1f} s: {report.site / 'index.html'}")
