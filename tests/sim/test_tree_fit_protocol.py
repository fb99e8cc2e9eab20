"""The tree fit's protocol (benchmarks/fit_trees.py, benchmarks/vessel_morphology.py): the real masks of
one half of the committed split only, a distance that is zero between equal samples, and the
per-measure separation."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svr_jax import split as split_lib

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fit_trees  # noqa: E402
import vessel_morphology as vm  # noqa: E402


def _fake_octa500(folder: Path, ids: list[str], eyes: list[str]) -> None:
    """3 mm NORMAL eyes whose mask holds as many vessel pixels (in the left column) as the index in ``ids``,
    plus one marker pixel at the top left (the nasal side tells whether an OS mask was mirrored)."""
    (folder / "m").mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["id", "scan_mm", "disease", "eye", "large_vessel_mask"])
        for i, (eye_id, eye) in enumerate(zip(ids, eyes)):
            mask = np.zeros((304, 304), np.uint8)
            mask[1 : 1 + i, 0] = 255
            mask[0, 0] = 255
            Image.fromarray(mask).save(folder / "m" / f"{eye_id}.png")
            w.writerow([eye_id, 3, "NORMAL", eye, f"m/{eye_id}.png"])


@pytest.mark.parametrize("half", ["fit", "heldout"])
def test_real_masks_come_from_one_half_only_and_left_eyes_are_mirrored(tmp_path, half):
    split = split_lib.committed_split()
    ids = sorted(split.fit)[:3] + sorted(split.heldout)[:3]
    eyes = ["OD", "OS", "OD", "OS", "OD", "OS"]
    _fake_octa500(tmp_path, ids, eyes)
    masks = vm.real_masks(tmp_path, "3mm", "NORMAL", None, half=half)
    wanted = [i for i, eye_id in enumerate(ids) if eye_id in split.ids(half)]
    assert sorted(int(m.sum()) - 1 for m in masks) == wanted
    for m in masks:  # the marker pixel: left column for OD, mirrored to the right for OS
        index = int(m.sum()) - 1
        assert m[0, 303 if eyes[index] == "OS" else 0]
    assert len(vm.real_masks(tmp_path, "3mm", "NORMAL", None, half="all")) == 6


def test_distance_is_zero_for_equal_samples_and_grows_with_the_offset():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 5)) * [1.0, 2.0, 0.1, 5.0, 1.0]
    assert fit_trees.distance(real, real) == pytest.approx(0.0, abs=1e-12)
    shifted = [fit_trees.distance(real, real + d * real.std(0)) for d in (0.5, 1.0, 2.0)]
    assert shifted == pytest.approx([0.25, 1.0, 4.0], rel=1e-6)  # in units of the real sd, whatever the scale
    assert fit_trees.distance(real, 3.0 * (real - real.mean(0)) + real.mean(0)) == pytest.approx(0.25 * np.log(3.0) ** 2, rel=1e-2)


def test_univariate_auc_names_the_measure_that_gives_the_masks_away_first():
    rng = np.random.default_rng(1)
    real, syn = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    syn[:, 1] -= 10.0  # lower in synthetic: folded to an AUC of 1 as well
    ranked = vm.univariate_auc(real, syn, ["a", "b", "c"])
    assert ranked[0] == ("b", 1.0) and all(0.5 <= a < 0.8 for _, a in ranked[1:])
