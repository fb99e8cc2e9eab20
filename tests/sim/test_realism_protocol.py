"""The realism protocol: a fixed split the fit cannot cross, and held-out statistics the fit never uses."""

from __future__ import annotations

import ast
import csv
import inspect
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svr_jax import heldout_stats, realdata
from svr_jax import split as split_lib
from svr_jax import stats as stats_lib

OCTA500 = realdata.default_octa500_dir()
HAS_OCTA500 = (OCTA500 / "labels.csv").is_file()


# --- the split file -----------------------------------------------------------------------------------


def test_committed_split_is_disjoint_and_sorted_ids_only():
    split = split_lib.committed_split()
    assert not split.fit & split.heldout
    assert len(split.fit) + len(split.heldout) == 350  # the development eyes of OCTA-500 (labels.csv rows)
    assert abs(len(split.fit) - len(split.heldout)) <= 11  # one odd eye per stratum at most (11 strata)
    assert all(i.isdigit() for i in split.fit | split.heldout)


def test_derive_split_is_stratified_deterministic_and_order_free():
    rng = np.random.default_rng(0)
    rows = [dict(id=str(1000 + i), scan_mm=float(rng.choice([3, 6])), disease=str(rng.choice(["NORMAL", "DR", "AMD"])))
            for i in range(301)]
    split = split_lib.derive_split(rows)
    assert split == split_lib.derive_split(rows[::-1])  # row order plays no part
    assert split.fit | split.heldout == {r["id"] for r in rows} and not split.fit & split.heldout
    for key, count in Counter(split_lib.stratum(r) for r in rows).items():
        in_fit = sum(1 for r in rows if split_lib.stratum(r) == key and r["id"] in split.fit)
        assert in_fit == math.ceil(count / 2), key
    # Adding eyes to one stratum leaves the other strata's halves as they were.
    more = rows + [dict(id="99999", scan_mm=3.0, disease="CNV")]
    assert split_lib.derive_split(more).heldout - {"99999"} == split.heldout
    with pytest.raises(ValueError, match="appears twice"):
        split_lib.derive_split(rows + rows[:1])


@pytest.mark.skipif(not HAS_OCTA500, reason="OCTA-500 dev folder absent (set SVR_OCTA500)")
def test_committed_split_is_the_one_derived_from_the_real_labels():
    with open(OCTA500 / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert split_lib.committed_split() == split_lib.derive_split(rows)  # stratified, covers every eye once
    assert split_lib.committed_split().fit | split_lib.committed_split().heldout == {r["id"] for r in rows}


# --- the fit never reads a held-out id ----------------------------------------------------------------


def fake_octa500(folder: Path, size_px: int = 304, count: int = 12) -> dict[str, str]:
    """A tiny OCTA-500-shaped folder whose ids are real split ids (half fit, half held-out); no real data."""
    split = split_lib.committed_split()
    fit_ids = sorted(split.fit)[:count // 2]
    held_ids = sorted(split.heldout)[:count // 2]
    (folder / "OCTA_3mm" / "images").mkdir(parents=True)
    rows = ["id,scan_mm,disease,image"]
    rng = np.random.default_rng(0)
    for eye_id in fit_ids + held_ids:
        pixels = rng.integers(60, 140, (size_px, size_px), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / "OCTA_3mm" / "images" / f"{eye_id}.png")
        rows.append(f"{eye_id},3,NORMAL,OCTA_3mm/images/{eye_id}.png")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return {i: "fit" for i in fit_ids} | {i: "heldout" for i in held_ids}


def record_reads(monkeypatch) -> list[str]:
    """Every image file PIL opens from now on (ids from file names): the loader's only way in."""
    opened: list[str] = []
    original = Image.open

    def spy(path, *args, **kwargs):
        opened.append(Path(path).stem)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    return opened


def fit_job(folder: Path, tmp_path: Path, *extra: str):
    from svr_jax import fit_report
    from svr_jax.cli import compose
    from svr_jax.commands import fit as fit_command

    cfg = compose("fit", [f"data={folder}", f"out={tmp_path / 'out'}", *extra])
    return fit_report, fit_command.parse(cfg)


def run_fit_reading_only(fit_report, job, monkeypatch) -> list[str]:
    """``run_one`` up to the point where it has read the real images, with the optimisation itself
    replaced by an exception: the loading path is the command's own."""

    class Loaded(Exception):
        pass

    def stop(*args, **kwargs):
        raise Loaded

    import svr_jax.fit

    monkeypatch.setattr(svr_jax.fit, "real_summary", stop)
    opened = record_reads(monkeypatch)
    with pytest.raises(Loaded):
        fit_report.run_one(job, job.classes[0], job.out)
    return opened


def test_svr_fit_reads_only_the_fit_half(tmp_path, monkeypatch):
    halves = fake_octa500(tmp_path / "data")
    fit_command, job = fit_job(tmp_path / "data", tmp_path)
    assert job.half == "fit"
    opened = run_fit_reading_only(fit_command, job, monkeypatch)
    assert sorted(opened) == sorted(i for i, h in halves.items() if h == "fit")
    assert not [i for i in opened if halves[i] == "heldout"]


def test_svr_fit_refuses_the_heldout_half_and_unknown_eyes(tmp_path, monkeypatch):
    fake_octa500(tmp_path / "data")
    with pytest.raises(ValueError, match="never for fitting"):
        fit_job(tmp_path / "data", tmp_path, "split=heldout")
    # An eye the split does not know (a stale split or a new eye) is an error, not a silent read.
    labels = tmp_path / "data" / "labels.csv"
    first = labels.read_text().splitlines()[1].split(",")
    Image.fromarray(np.full((304, 304), 99, np.uint8), mode="L").save(tmp_path / "data" / "OCTA_3mm" / "images" / "77777.png")
    labels.write_text(labels.read_text() + f"77777,3,NORMAL,OCTA_3mm/images/77777.png\n")
    with pytest.raises(ValueError, match="neither half"):
        fit_job(tmp_path / "data", tmp_path)
    # Every eye only when asked for by name, and the job says so.
    _, job = fit_job(tmp_path / "data", tmp_path, "split=none")
    assert job.half is None and first[0]


def test_a_folder_of_other_eyes_is_not_split(tmp_path):
    from svr_jax.fit_report import split_label

    (tmp_path / "mine").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((16, 16), 80, np.uint8), mode="L").save(tmp_path / "mine" / f"{name}.png")
    assert [r["id"] for r in realdata.list_images(tmp_path / "mine", half="fit")] == ["a", "b"]
    assert split_label("fit", ("a", "b")) == "not applicable" and split_label(None, ("a",)) == "none"
    assert split_label("fit", tuple(sorted(split_lib.committed_split().fit))[:2]) == "fit"


@pytest.mark.skipif(not HAS_OCTA500, reason="OCTA-500 dev folder absent (set SVR_OCTA500)")
def test_svr_fit_on_the_real_folder_reads_no_heldout_id(tmp_path, monkeypatch):
    fit_command, job = fit_job(OCTA500, tmp_path, "limit=null")
    opened = run_fit_reading_only(fit_command, job, monkeypatch)
    split = split_lib.committed_split()
    assert len(set(opened)) == 60 and set(opened) <= split.fit and not set(opened) & split.heldout  # image and mask per eye
    heldout = realdata.list_images(OCTA500, scan_mm=3, disease="NORMAL", half="heldout")
    assert len(heldout) == 60 and {r["id"] for r in heldout} <= split.heldout


# --- fit statistics and held-out families are disjoint ------------------------------------------------


def test_fit_statistics_and_heldout_families_are_disjoint_by_name():
    fit_names = stats_lib.statistic_names(304, 3000 / 304)
    held_names = heldout_stats.family_names()
    assert not set(fit_names) & set(held_names)
    fit_flat = {n for names in fit_names.values() for n in names}
    held_flat = {n for names in held_names.values() for n in names}
    assert not fit_flat & held_flat
    assert set(stats_lib.feature_names(304, 3000 / 304)) <= fit_flat  # the joint term's features are fit statistics


def _imports(module) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {f"{'.' * node.level}{node.module or ''}"} | {f"{'.' * node.level}{node.module or ''}.{a.name}" for a in node.names}
    return names


def test_fit_statistics_and_heldout_families_are_disjoint_by_construction():
    import svr_jax.commands.fit
    import svr_jax.fit

    # The held-out families use none of the fit's code (no svr_jax module, no JAX) ...
    assert not [n for n in _imports(heldout_stats) if n.startswith((".", "svr_jax", "jax"))]
    # ... and nothing on the fit's path imports them.
    for module in (svr_jax.fit, svr_jax.commands.fit, stats_lib):
        assert not [n for n in _imports(module) if "heldout_stats" in n], module.__name__
    # Their values: one entry per name, for both fields' pixel sizes.
    image = np.clip(np.random.default_rng(1).normal(0.4, 0.15, (96, 96)), 0, 1)
    for pixel_um in (3000 / 304, 15.0):
        values = heldout_stats.image_features(image, pixel_um=pixel_um)
        assert {f: len(v) for f, v in values.items()} == {f: len(n) for f, n in heldout_stats.family_names().items()}
        assert all(np.all(np.isfinite(v)) for v in values.values())


def test_fit_report_names_its_statistics(tmp_path):
    fake_octa500(tmp_path / "data")
    fit_command, job = fit_job(tmp_path / "data", tmp_path)
    names = fit_command.fit_statistics(job)
    assert list(names)[: len(stats_lib.STAT_GROUPS)] == list(stats_lib.STAT_GROUPS) and "joint" in names
    assert len(names["histogram"]) == stats_lib.HIST_BINS and len(names["joint"]) == 36


# --- the classifier tests ------------------------------------------------------------------------------


def test_feature_c2st_is_chance_on_one_distribution_and_high_on_two():
    from svr_jax.c2st import feature_c2st

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    same = feature_c2st(rng.normal(size=(120, 5)), labels)
    assert same["c2st"] < 0.68
    shifted = rng.normal(size=(120, 5)) + labels[:, None] * np.array([1.5, 0, 0, 0, 0])
    assert feature_c2st(shifted, labels)["logistic"] > 0.75


def test_cnn_c2st_trains_until_it_fits_and_tells_textures_apart():
    from svr_jax.c2st import CnnSettings, cnn_c2st

    rng = np.random.default_rng(0)
    smooth = np.clip(0.4 + 0.05 * rng.normal(size=(24, 32, 32)), 0, 1)
    speckled = np.clip(0.4 + 0.2 * rng.normal(size=(24, 32, 32)), 0, 1)
    labels = np.repeat([0, 1], 24)
    settings = CnnSettings(channels=(4, 8), max_steps=200, check_every=20)
    result = cnn_c2st(np.concatenate([smooth, speckled]), labels, settings=settings)
    assert result["train_accuracy"] >= settings.target_train_accuracy and result["c2st"] > 0.9
    assert result["steps"] < settings.max_steps  # it stopped because it fitted, not because time ran out
