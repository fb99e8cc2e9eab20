"""An export folder nobody can corrupt (issue 35): each case runs the command a hostile but realistic
user would, checks the exit code and the one-line message, and that the folder afterwards verifies
clean and equals an uninterrupted run byte for byte.

Numbered cases follow the issue: 1 reuse with other settings, 2 NaN / inf / negative parameters,
3 the LLaMA-Factory view, 4 a missing or unreadable manifest, 5 extending a fit; then the "Also" items.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from svr_jax import cli

# One compiled program for every export and generate here (same field, stage, spread and batch shape).
SMALL = ["size_px=64", "fov_mm=1.0", "shard_size=4", "batch=4", "stage=mixed"]
N = 8  # two shards


def export(out: Path, *extra: str) -> int:
    return cli.main(["export", f"n={N}", f"out={out}", *SMALL, *extra])


def verify(out: Path) -> tuple[int, list[str]]:
    """(exit code, printed lines) of ``svr export verify``."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            code = cli.main(["export", "verify", f"out={out}"])
        except SystemExit as exit_info:
            code = exit_info.code
    return code, buffer.getvalue().strip().splitlines()


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def one_error_line(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("svr ")]
    assert len(err) == 1 and err[0].startswith(f"svr {command}: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted export: every repaired folder must equal it byte for byte."""
    out = tmp_path_factory.mktemp("integrity") / "ref"
    assert export(out) == 0
    assert verify(out) == (0, [f"verify: 0 problem(s) in {out}"])
    return out


@pytest.fixture()
def copy(reference, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    return out


# --- 1. re-exporting into a folder with other settings ----------------------------------------------


@pytest.mark.parametrize("extra,keys", [
    (["shard_size=2"], ["shard_size"]),
    (["tasks.caption=100", "masks=false"], ["tasks", "masks"]),
    (["seed=1"], ["config_hash", "seed"]),
])
def test_1_reuse_with_other_settings_is_refused_and_nothing_written(copy, reference, capsys, extra, keys):
    before = snapshot(copy)
    assert export(copy, *extra) == 2
    line = one_error_line(capsys, "export")
    assert "holds an export of another identity" in line and f"differs in {keys[0]}:" in line
    assert all(f"{k}:" in line for k in keys), line
    assert snapshot(copy) == before
    assert verify(copy)[0] == 0


def test_1_identity_is_in_the_manifest_and_every_sidecar(reference):
    from svr_jax.export.pipeline import IDENTITY_KEYS

    manifest = json.loads((reference / "manifest.json").read_text())
    sidecars = [json.loads(p.read_text()) for p in sorted((reference / "data").glob("*.parquet.json"))]
    assert len(sidecars) == 2
    for sidecar in sidecars:
        assert sidecar["identity"] == {k: manifest[k] for k in IDENTITY_KEYS}
    assert manifest["schema_version"] == 2 and manifest["shard_size"] == 4 and manifest["masks"] is True


def test_1_a_stray_shard_of_another_layout_is_named_and_removed(copy, reference):
    stray = copy / "data" / "train-00005-of-00007.parquet"
    stray.write_bytes(b"PAR1")
    code, lines = verify(copy)
    assert code == 1 and "data/train-00005-of-00007.parquet: unexpected file (not part of this export)" in lines
    assert export(copy) == 0
    assert snapshot(copy) == snapshot(reference)


# --- 2. NaN, inf and out-of-range parameters -------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9"])
def test_2_bad_parameter_is_refused_before_anything_runs(tmp_path, capsys, value):
    out = tmp_path / "never"
    assert export(out, f"params.appearance.psf_sigma_um={value}") == 2
    line = one_error_line(capsys, "export")
    shown = {"nan": "nan", "inf": "inf", "-1": "-1", "1e9": "1e+09"}[value]
    assert f"params.appearance.psf_sigma_um={shown} is out of range: must be a finite number in [0.5, 20] µm" in line
    assert not out.exists()


def test_2_every_parameter_has_a_range_holding_the_presets_and_the_fit_ranges():
    from svr_jax.presets import preset_params
    from svr_jax.config import PRESETS, SimParams
    from svr_jax.fit import DEFAULT_FIT_PARAMS, EXTRA_FIT_PARAMS
    from svr_jax.parameters import VALID, check_params, leaves

    assert set(leaves(SimParams())) == set(VALID)
    for name in PRESETS:
        check_params(preset_params(name)[1])  # raises if a fitted preset value left its range
    for p in DEFAULT_FIT_PARAMS + EXTRA_FIT_PARAMS:
        lo, hi = VALID[p.path]
        assert lo <= p.lo < p.hi <= hi, p


def test_2_last_line_of_defence_rejects_non_finite_samples_with_their_index(reference, tmp_path, capsys):
    """Validation bypassed (a library caller): every sample renders NaN, each is rejected by index."""
    from svr_jax.commands import export_cmd
    from svr_jax.export.pipeline import export
    from svr_jax.io import json_text

    job = export_cmd.parse(cli.compose("export", [f"n={N}", f"out={tmp_path / 'nan'}", *SMALL]))
    params = job.base.params
    bad = dataclasses.replace(params, appearance=dataclasses.replace(params.appearance, psf_sigma_um=float("nan")))
    job = dataclasses.replace(job, base=dataclasses.replace(job.base, params=bad))
    manifest = export(job)
    err = capsys.readouterr().err
    assert manifest["rows"] == 0 and manifest["rejected"] == N
    assert all(f"export: sample {i} rejected: non-finite image" in err for i in range(N))
    for path in (tmp_path / "nan").rglob("*.json"):
        json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))  # strict JSON only
    with pytest.raises(ValueError):
        json_text({"contrast": float("nan")})


# --- 3. the LLaMA-Factory view ---------------------------------------------------------------------


def test_3_view_is_verified_and_repaired_without_rendering(copy, reference):
    image = sorted((copy / "llamafactory" / "images").glob("*/*.png"))[3]
    image.write_bytes(image.read_bytes()[:50])  # truncated
    jsonl = copy / "llamafactory" / "data" / "train-00001-of-00002.jsonl"
    jsonl.unlink()
    shard_times = {p.name: p.stat().st_mtime_ns for p in (copy / "data").glob("*.parquet")}
    code, lines = verify(copy)
    rel = image.relative_to(copy).as_posix()
    assert code == 1
    assert f"{rel}: sha256 mismatch (corrupt or truncated)" in lines
    assert "llamafactory/data/train-00001-of-00002.jsonl: missing" in lines
    assert export(copy) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (copy / "data").glob("*.parquet")} == shard_times  # no re-render
    assert verify(copy)[0] == 0
    assert snapshot(copy) == snapshot(reference)


def test_3_card_and_dataset_info_are_covered(copy, reference):
    (copy / "card" / "stages.png").write_bytes(b"")
    (copy / "llamafactory" / "dataset_info.json").unlink()
    code, lines = verify(copy)
    assert code == 1 and "card/stages.png: sha256 mismatch (corrupt or truncated)" in lines
    assert "llamafactory/dataset_info.json: missing" in lines
    assert export(copy) == 0
    assert snapshot(copy) == snapshot(reference)


# --- 4. the manifest itself ------------------------------------------------------------------------


def test_4_missing_manifest_does_not_switch_the_guard_off(copy, reference, capsys):
    (copy / "manifest.json").unlink()
    assert export(copy, "seed=1") == 2
    line = one_error_line(capsys, "export")
    assert "differs in config_hash:" in line and "seed: 0 here vs 1 asked" in line
    assert not (copy / "manifest.json").exists()  # nothing written
    assert export(copy) == 0  # the same settings: rebuilt from the sidecars
    assert "rebuilt from the shard sidecars" in capsys.readouterr().err
    assert snapshot(copy) == snapshot(reference)


def test_4_unreadable_manifest_is_named_and_rebuilt(copy, reference, capsys):
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text()[:198])  # truncated
    code, lines = verify(copy)
    assert code == 1 and lines[0].startswith("manifest.json: unreadable (Unterminated string")
    assert export(copy) == 0
    assert f"{str(manifest)!r} unreadable" in capsys.readouterr().err
    assert snapshot(copy) == snapshot(reference)


def test_4_edited_manifest_or_sidecar_is_named(copy, reference):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["rows"] = 80
    (copy / "manifest.json").write_text(json.dumps(manifest))
    sidecar = copy / "data" / "train-00000-of-00002.parquet.json"
    entry = json.loads(sidecar.read_text())
    entry["identity"]["seed"] = 1
    sidecar.write_text(json.dumps(entry))
    code, lines = verify(copy)
    assert code == 1
    assert "data/train-00000-of-00002.parquet.json: another identity (differs in seed)" in lines
    assert any(line.startswith("manifest.json: does not match the shard sidecars (differs in ") and "rows" in line for line in lines)


# --- 5. extending a fit ----------------------------------------------------------------------------


@pytest.mark.slow  # two gradient compilations (the schedule's length is baked into the program): minutes on 2 cores
def test_5_fit_extends_steps_and_checks_the_fingerprint_first(tmp_path):
    """`svr fit ... steps=2` then `steps=3` in the same out: continues from step 2 (was an orbax shape
    error); the fingerprint is checked before any array is restored."""
    from svr_jax import fit as fit_lib
    from svr_jax.config import default_params, preset

    cfg = preset("3mm_lognormal")  # the cheaper appearance model: the resume logic is the same
    cfg = dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, size_px=48, fov_mm=0.9))
    start = default_params(cfg)
    _, real = fit_lib.real_summary(fit_lib.simulate_images(start, cfg, n=4, seed=3), cfg)
    chosen = fit_lib.fit_param_by_path(["appearance.gain"])
    kwargs = dict(batch=2, lr=0.1, fit_params=chosen, checkpoint_dir=tmp_path / "ck", checkpoint_every=1, progress=False)
    fit_lib.fit(cfg, start, real, steps=2, **kwargs)
    extended = fit_lib.fit(cfg, start, real, steps=3, **kwargs)  # continues from step 2
    assert extended.resumed_from == 2 and extended.losses.shape == (3,) and np.isfinite(extended.losses).all()
    with pytest.raises(ValueError, match="at step 3, past steps=2"):
        fit_lib.fit(cfg, start, real, steps=2, **kwargs)
    with pytest.raises(ValueError, match=r"different fit \(differs in \['lr'\]\)"):
        fit_lib.fit(cfg, start, real, steps=4, **{**kwargs, "lr": 0.2})


# --- Also -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("override,message", [
    ("size_px=100000", "size_px must be in [16, 2048] (memory limit), got 100000"),
    ("batch=64 size_px=2048 shard_size=64", "exceeds the memory limit 16777216; use batch <= 4 at size_px=2048"),
    ("tasks.reasoning=-1", "tasks.reasoning=-1.0 is out of range: must be a finite weight >= 0"),
    ("n=abc", "n=abc: 'abc' is not an integer"),
    ("variability=nan", "variability must be >= 0 and finite"),
    ("stage.mixture.normal=nan", "stage mixture must be 5 non-negative weights"),
])
def test_also_bad_settings_one_line_exit_2_nothing_written(tmp_path, capsys, override, message):
    out = tmp_path / "never"
    assert cli.main(["export", f"out={out}", *override.split()]) == 2
    assert message in one_error_line(capsys, "export")
    assert not out.exists()


def test_also_generate_into_a_folder_of_another_identity_is_refused(tmp_path, reference, capsys):
    out = tmp_path / "gen"
    args = ["generate", "n=4", f"out={out}", "size_px=64", "fov_mm=1.0", "batch=4", "stage=mixed", "contact_sheet=false"]
    assert cli.main(args) == 0
    before = snapshot(out)
    assert cli.main(args + ["seed=1"]) == 2
    line = one_error_line(capsys, "generate")
    assert "holds samples of another identity (generate.json differs in config_hash:" in line and "seed: 0 here vs 1 asked" in line
    assert snapshot(out) == before
    assert cli.main(args + ["n=2", "first_index=4"]) == 0  # more samples of the same dataset: fine
    assert cli.main(["generate", f"out={reference}", "n=1"]) == 2  # an export folder is not a generate folder
    assert "not empty and not a generate folder" in one_error_line(capsys, "generate")


def test_also_a_full_disk_is_named_with_the_path(tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1")  # the start of a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "full"
    assert export(out) == 2
    line = one_error_line(capsys, "export")
    assert f"[Errno 28] No space left on device: '{out / 'data' / 'train-00000-of-00002.parquet'}'" in line
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_also_a_real_full_disk_tmpfs(tmp_path):
    """A 150 KB tmpfs (needs root): the program's own error line names the file it could not write."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        out = mount / "export"
        done = subprocess.run([sys.executable, "-m", "svr_jax.cli", "export", f"n={N}", f"out={out}", *SMALL],
                              capture_output=True, text=True)
        assert done.returncode == 2, done.stderr[-2000:]
        line = [l for l in done.stderr.splitlines() if l.startswith("svr export: error:")]
        assert len(line) == 1 and "No space left on device: '" + str(out) in line[0], line
    finally:
        subprocess.run(["umount", str(mount)])


def test_also_text_checker_catches_the_three_missed_plants(reference):
    import pyarrow.parquet as pq

    from svr_jax.text import check
    from svr_jax.text.measure import from_dict
    from svr_jax.text.reasoning import reduced_sectors
    from svr_jax.text.tasks import boxes_json

    metas = [json.loads(m) for p in sorted((reference / "data").glob("*.parquet"))
             for m in pq.read_table(p, columns=["metadata"]).column("metadata").to_pylist()]
    m = max((from_dict(meta["measured"]) for meta in metas), key=lambda m: len(m.microaneurysms))
    assert len(m.microaneurysms) >= 2
    # The small field has only a central sector: give it a ring in which only the temporal one is reduced.
    m = m.replace(sector_density_pct={"central": 10.0, "superior parafoveal": 40.0, "inferior parafoveal": 41.0,
                                      "nasal parafoveal": 39.0, "temporal parafoveal": 20.0})
    assert reduced_sectors(m) == ["temporal parafoveal"]
    assert check.contradictions("Image contrast (nan) is adequate.", m)
    assert check.contradictions("The superior parafoveal sector shows markedly reduced vessel density.", m)
    assert not check.contradictions("The temporal parafoveal sector shows markedly reduced vessel density.", m)
    boxes = json.loads(boxes_json(m, "microaneurysm"))
    assert not check.contradictions(json.dumps(boxes), m, task="grounding")
    assert check.contradictions(json.dumps(boxes[:-1]), m, task="grounding")  # a dropped box


def test_also_determinism_same_batch_any_first_index_byte_for_byte(tmp_path):
    """The promise kept: at the same ``batch``, sample i has the same bytes (image, masks, metadata) for
    any ``first_index`` and ``n``: its position in the batch does not matter. (Another batch size rounds
    the last float bit of about half the pixels differently: docs/experiments/2026-12-06-export-integrity.md.)"""
    common = ["size_px=64", "fov_mm=1.0", "batch=4", "stage=mixed", "contact_sheet=false"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["generate", "n=4", f"out={a}", *common]) == 0
    assert cli.main(["generate", "n=2", "first_index=1", f"out={b}", *common]) == 0  # slots 0-1 here, 1-2 there
    files = {k: v for k, v in snapshot(b).items() if k != "generate.json"}
    assert len(files) > 2 and all(snapshot(a)[k] == v for k, v in files.items())
