"""`svr browse` on an existing export: build time, size on disk, and how fast the index page opens
from disk in headless Chromium (the system's, via Selenium).

    python benchmarks/browse.py /data/octa10k                 # build, then time 5 page loads
    python benchmarks/browse.py /data/octa10k --no-build      # time the loads of the existing site
    python benchmarks/browse.py out/export --no-build --screenshot docs/img/browser_sample.png --sample 5

A load is timed from navigation start to (a) the grid's first rows shown (``data-ready``) and (b) every
thumbnail in the first screen decoded; then (c) a stage filter, until every index page is scanned. Each
load uses a new browser with a fresh profile (no cache).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from svr_jax.browse import BrowseConfig, build, headless


def timed_load(index_html: Path) -> dict:
    with headless.chromium(width=1400, height=1000) as driver:
        started = time.perf_counter()
        driver.get(headless.file_url(index_html))
        deadline = time.monotonic() + 60
        script = ("const imgs = [...document.querySelectorAll('#grid img')].filter(i => i.getBoundingClientRect().top < innerHeight);"
                  "return document.body.dataset.ready === '1' && imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"
                  " ? [Number(document.body.dataset.readyMs), performance.now(), imgs.length] : null")
        while (found := driver.execute_script(script)) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the index page did not load in 60 s")
            time.sleep(0.01)
        wall = time.perf_counter() - started
        # A filter scans every index page: time until the last page is matched.
        filter_started = driver.execute_script(
            "const s = document.querySelector('#filters [name=stage]'); s.value = s.options[s.options.length - 1].value;"
            "s.dispatchEvent(new Event('change', {bubbles: true})); return performance.now()")
        while not (done := driver.execute_script("return /pairs match$/.test(document.getElementById('status').textContent)"
                                                 " ? [performance.now(), document.getElementById('status').textContent] : null")):
            if time.monotonic() > deadline:
                raise SystemExit("the filter did not finish in 60 s")
            time.sleep(0.01)
        errors = headless.console_errors(driver)
    return dict(ready_ms=found[0], thumbs_ms=found[1], thumbs=found[2], wall_s=wall, filter_all_pages_ms=done[0] - filter_started,
                filter_status=done[1], console_errors=len(errors))


def screenshot(index_html: Path, sample: int, path: Path) -> None:
    with headless.chromium(width=1500, height=1000) as driver:
        driver.get(headless.file_url(index_html) + f"#s={sample}")
        for _ in range(400):
            if driver.execute_script("return document.body.dataset.ready === '1' && document.getElementById('base').complete"
                                     " && document.getElementById('base').naturalWidth > 0"):
                break
            time.sleep(0.025)
        for key in ("faz", "nonperfusion", "microaneurysm", "irma", "neovascularization", "sectors"):
            driver.execute_script(f"const b = document.getElementById('t-{key}'); if (b && !b.disabled && !b.checked) b.click();")
        time.sleep(0.5)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--no-build", action="store_true", help="time the existing site only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, default=None, help="save a sample page screenshot here")
    parser.add_argument("--sample", type=int, default=0)
    args = parser.parse_args()
    result = dict(export=str(args.export))
    if not args.no_build:
        from tqdm import tqdm

        with tqdm(unit="pair", desc="browse", mininterval=10) as bar:
            report = build(args.export, BrowseConfig(page_size=args.page_size, workers=args.workers), progress=bar.update)
        result.update(rows=report.rows, pages=report.pages, build_s=round(report.seconds, 1), site_mb=round(report.bytes / 1e6, 1),
                      files=report.files, workers=args.workers)
    index_html = args.export / "browser" / "index.html"
    loads = [timed_load(index_html) for _ in range(args.loads)]
    for load in loads:
        print(json.dumps(load))
    result.update(
        loads=len(loads), ready_ms_median=statistics.median(x["ready_ms"] for x in loads),
        thumbs_ms_median=statistics.median(x["thumbs_ms"] for x in loads), thumbs_ms_max=max(x["thumbs_ms"] for x in loads),
        filter_all_pages_ms_median=statistics.median(x["filter_all_pages_ms"] for x in loads),
        console_errors=sum(x["console_errors"] for x in loads),
    )
    if args.screenshot:
        screenshot(index_html, args.sample, args.screenshot)
        result["screenshot"] = str(args.screenshot)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
