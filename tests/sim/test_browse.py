"""`svr browse` / `svr export browse=true`: the static site, checked file by file and in headless Chromium."""

import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from svr_jax import cli
from svr_jax.browse import headless, layers
from svr_jax.browse.sample import text_boxes

SMALL = ["size_px=64", "fov_mm=1.0", "shard_size=6", "batch=4", "seed=5", "stage=mixed"]  # as test_export: one compile
N = 18
PAGE = 5  # index rows a file: four pages, so the grid loads pages lazily
TASKS = ["tasks.grounding=0.4"]  # enough grounding records to have boxes in the text


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browse") / "export"
    assert cli.main(["export", f"n={N}", f"out={out}", *SMALL, *TASKS, "browse=true", "card=false", "llamafactory=false"]) == 0
    assert (out / "browser" / "index.html").is_file()  # browse=true
    assert cli.main(["browse", str(out), f"page_size={PAGE}"]) == 0  # rebuilt in place with small pages
    return out


@pytest.fixture(scope="module")
def rows(export_dir) -> list[dict]:
    """Ground truth from the shards themselves."""
    out = []
    for path in sorted((export_dir / "data").glob("*.parquet")):
        out += pq.read_table(path, columns=["index", "id", "stage", "task", "messages", "metadata"]).to_pylist()
    for r in out:
        r["meta"] = json.loads(r["metadata"])
        r["answer"] = "\n".join(p["text"] for m in r["messages"] if m["role"] == "assistant" for p in m["content"])
    return out


def record(site: Path, index: int) -> dict:
    text = (site / "a" / f"{index // 1000:04d}" / f"{index:07d}.js").read_text()
    return json.loads(text[text.index(",") + 1: text.rindex(")")])


def test_site_files_and_records(export_dir, rows):
    site = export_dir / "browser"
    assert sorted(p.name for p in (site / "pages").iterdir()) == [f"p{k:05d}.js" for k in range(-(-N // PAGE))]
    assert not list(export_dir.glob(".browser*"))  # no temporary folder left
    for path in [site / "index.html", *(site / "static").iterdir()]:
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # offline
    for r in rows:
        rec = record(site, r["index"])
        # The sector map uses the text's own sectors: exactly the sectors the metadata reports.
        assert {s["name"] for s in rec["sectors"]} == set(r["meta"]["measured"]["sector_density_pct"])
        assert rec["text_boxes"] == text_boxes(r["answer"])
        assert rec["stage"] == r["stage"] and rec["laterality"] == r["meta"]["laterality"]
        thumb = Image.open(site / "a" / "0000" / f"{r['index']:07d}.t.jpg")
        assert thumb.size == (128, 128)


def test_bad_input_one_line_nothing_written(export_dir, tmp_path, capsys):
    not_export = tmp_path / "plain"
    not_export.mkdir()
    (not_export / "notes.txt").write_text("hello")
    assert cli.main(["browse", str(not_export)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an svr export folder" in err[0]
    assert sorted(p.name for p in not_export.iterdir()) == ["notes.txt"]

    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken, ignore=shutil.ignore_patterns("browser"))
    shard = sorted((broken / "data").glob("*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    before = sorted(str(p.relative_to(broken)) for p in broken.rglob("*"))
    assert cli.main(["browse", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fails `svr export verify`" in err[0] and shard.name in err[0]
    assert sorted(str(p.relative_to(broken)) for p in broken.rglob("*")) == before


# --- in the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    found = headless.find_chromium()
    if isinstance(found, str):
        pytest.skip(f"no headless Chromium: {found}")
    with headless.chromium(width=1400, height=1000) as d:
        yield d


def wait(predicate, timeout_s: float = 10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting in the browser")


def shown_indices(d) -> list[int]:
    return [int(v) for v in d.execute_script("return [...document.querySelectorAll('#grid .card')].map(c => c.dataset.index)")]


def set_select(d, name: str, value: str) -> None:
    d.execute_script(
        "const s = document.querySelector(`#filters [name='${arguments[0]}']`); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change', {bubbles: true}));", name, value)


def stage_pixels(d) -> np.ndarray:
    from selenium.webdriver.common.by import By

    return np.asarray(Image.open(io.BytesIO(d.find_element(By.ID, "stage").screenshot_as_png)).convert("RGB"), np.int16)


def images_loaded(d) -> bool:
    """The image and the overlay sprite of the shown sample have loaded."""
    return d.execute_script("return document.getElementById('stage').dataset.loaded === '1'"
                            " && document.getElementById('base').naturalWidth > 0")


def test_in_chromium(export_dir, rows, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = driver
    d.get(headless.file_url(export_dir / "browser" / "index.html"))
    wait(lambda: d.execute_script("return document.body.dataset.ready === '1'"))
    # Scrolling pulls in the remaining index pages; all rows end up in the grid.
    wait(lambda: shown_indices(d) == [r["index"] for r in rows])
    assert wait(lambda: d.execute_script("return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth == 128)"))

    # Filters change the grid, to exactly the rows the shards say.
    stages = sorted({r["stage"] for r in rows})
    vocab = d.execute_script("return SVR.meta.vocab")
    for stage in stages:
        set_select(d, "stage", str(vocab["stage"].index(stage)))
        want = [r["index"] for r in rows if r["stage"] == stage]
        wait(lambda: shown_indices(d) == want)
    set_select(d, "stage", "")
    set_select(d, "lesion", "-")
    wait(lambda: shown_indices(d) == [r["index"] for r in rows if not r["meta"]["measured"]["lesions"]])
    set_select(d, "lesion", str(d.execute_script("return SVR.meta.lesion_types").index("microaneurysm")))
    min_box = d.find_element(By.CSS_SELECTOR, "#filters [name='min']")
    min_box.send_keys("2")
    wait(lambda: shown_indices(d) == [r["index"] for r in rows
                                      if sum(l["type"] == "microaneurysm" for l in r["meta"]["measured"]["lesions"]) >= 2])
    min_box.clear()
    set_select(d, "lesion", "")
    task = rows[0]["task"]
    set_select(d, "task", str(vocab["task"].index(task)))
    wait(lambda: shown_indices(d) == [r["index"] for r in rows if r["task"] == task])
    d.find_element(By.ID, "reset").click()
    wait(lambda: len(shown_indices(d)) == N)

    # Click through to a sample whose text grounds boxes.
    target = next(r for r in rows if text_boxes(r["answer"]))
    d.find_element(By.CSS_SELECTOR, f".card[data-index='{target['index']}']").click()
    wait(lambda: d.execute_script("return !document.getElementById('sample-view').hidden"))
    wait(lambda: images_loaded(d) and target["id"] in d.find_element(By.ID, "sample-title").text)
    assert target["answer"].splitlines()[0][:40] in d.find_element(By.ID, "conversation").text
    lesions = target["meta"]["measured"]["lesions"]
    assert len(d.find_elements(By.CSS_SELECTOR, "#lesions tr")) == 1 + len(lesions)
    assert len(d.find_elements(By.CSS_SELECTOR, "#sectors tr")) == 1 + len(target["meta"]["measured"]["sector_density_pct"])

    # The image renders: grey OCTA pixels, not a blank stage.
    for box in d.find_elements(By.CSS_SELECTOR, "#toggles input:checked"):
        box.click()
    base = stage_pixels(d)
    assert base.std() > 20 and np.abs(base[..., 0] - base[..., 2]).mean() < 2

    # The text's boxes, drawn where the 0-1000 coordinates map back to.
    boxes = text_boxes(target["answer"])
    d.find_element(By.ID, "t-text_boxes").click()
    assert len(d.find_elements(By.CSS_SELECTOR, "#text-boxes rect")) == len(boxes)
    shot = stage_pixels(d)
    side = shot.shape[0]
    x0, y0, x1, y1 = boxes[0]["box"]
    ys = slice(int(y0 / 1000 * side) + 2, max(int(y0 / 1000 * side) + 3, int(y1 / 1000 * side) - 1))
    edge = shot[ys, max(0, int(x0 / 1000 * side) - 2): int(x0 / 1000 * side) + 3]  # the left edge of the first box
    assert ((edge[..., 1] > 180) & (edge[..., 2] > 180) & (edge[..., 0] < 120)).any()  # the box's cyan, not grey
    assert not d.find_elements(By.CSS_SELECTOR, "#text-boxes rect.miss")  # the export's texts all match a lesion
    d.find_element(By.ID, "t-text_boxes").click()

    # Every overlay toggles on (its pixels appear in the screenshot, in its colour) and off again.
    toggled = 0
    styles = {o["key"]: o["colour"] for o in d.execute_script("return SVR.meta.overlays")}
    for box in d.find_elements(By.CSS_SELECTOR, "#toggles input"):
        key = box.get_attribute("data-layer")
        if not box.is_enabled():
            continue
        box.click()
        on = stage_pixels(d)
        changed = np.abs(on - base).sum(-1) > 30
        assert changed.mean() > 0, key
        if key in styles:
            colour = np.asarray(layers.rgb(styles[key]))
            delta = (on - base)[changed].mean(0)
            assert int(np.argmin(delta)) == int(np.argmin(colour)) or colour.min() == colour.max(), key
        box.click()
        assert np.abs(stage_pixels(d) - base).sum(-1).max() < 30, key
        toggled += 1
    assert toggled >= 7  # vessels, capillaries, large vessels, arteries, veins, FAZ, sectors at least

    # Keyboard: next sample, a layer by its number, back to the grid.
    body = d.find_element(By.TAG_NAME, "body")
    position = [r["index"] for r in rows].index(target["index"])
    body.send_keys(Keys.ARROW_RIGHT)
    if position + 1 < N:
        wait(lambda: d.execute_script("return location.hash") == f"#s={rows[position + 1]['index']}")
        wait(lambda: rows[position + 1]["id"] in d.find_element(By.ID, "sample-title").text)
    body.send_keys("1")
    assert d.find_element(By.ID, "t-" + d.execute_script("return SVR.meta.overlays[0].key")).is_selected()
    body.send_keys(Keys.ESCAPE)
    wait(lambda: d.execute_script("return !document.getElementById('grid-view').hidden"))
    assert headless.console_errors(d) == []
