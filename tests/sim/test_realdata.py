"""Real-folder loading: every bad input is a ValueError/OSError naming the file; labels.csv filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svr_jax import realdata
from svr_jax.realdata import default_octa500_dir

REPO = Path(__file__).resolve().parents[2]
OCTA500 = default_octa500_dir()


def grey(path: Path, size=(32, 32), value=None) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size, dtype=np.uint8) if value is None else np.full(size, value, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_plain_folder_reads_8bit_grey(tmp_path):
    grey(tmp_path / "a.png", value=255)
    grey(tmp_path / "b.png", value=0)
    (tmp_path / "README.md").write_text("ignored")
    real = realdata.load_folder(tmp_path)
    assert real.images.shape == (2, 32, 32) and real.images.dtype == np.float32
    assert real.ids == ("a", "b")
    np.testing.assert_allclose(real.images[0], 1.0)
    np.testing.assert_allclose(real.images[1], 0.0)


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no images found"):
        realdata.load_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        realdata.load_folder(tmp_path / "nope")


def test_non_image_file_is_named(tmp_path):
    grey(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt: not an image file"):
        realdata.load_folder(tmp_path)


def test_fake_png_is_named(tmp_path):
    (tmp_path / "fake.png").write_text("this is not a png")
    with pytest.raises(ValueError, match=r"fake\.png: cannot read image"):
        realdata.load_folder(tmp_path)


def test_truncated_png_is_named(tmp_path):
    path = grey(tmp_path / "trunc.png", size=(128, 128))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"trunc\.png: cannot read image"):
        realdata.load_folder(tmp_path)


def test_rgb_colour_is_an_error_grey_rgb_is_converted(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour\.png: colour"):
        realdata.load_folder(tmp_path)
    (tmp_path / "colour.png").unlink()
    Image.fromarray(np.full((16, 16, 3), 51, np.uint8)).save(tmp_path / "grey_rgb.png")
    real = realdata.load_folder(tmp_path)
    np.testing.assert_allclose(real.images[0], 0.2, atol=1e-6)


def test_16bit_is_an_error(tmp_path):
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ValueError, match=r"deep\.png: .*16"):
        realdata.load_folder(tmp_path)


def test_mixed_sizes_name_both_files(tmp_path):
    grey(tmp_path / "a.png", size=(32, 32))
    grey(tmp_path / "b.png", size=(40, 40))
    with pytest.raises(ValueError, match=r"b\.png: size 40x40 px differs from .*a\.png"):
        realdata.load_folder(tmp_path)


def test_wrong_size_for_the_field(tmp_path):
    grey(tmp_path / "a.png", size=(32, 32))
    with pytest.raises(ValueError, match=r"a\.png: 32 px, but the simulator field is 304 px"):
        realdata.load_folder(tmp_path, size_px=304)


def write_labelled(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    rows = ["id,scan_mm,disease,image,large_vessel_mask"]
    for i, (mm, disease) in enumerate([(3, "NORMAL"), (3, "DR"), (6, "NORMAL"), (3, "NORMAL")]):
        grey(tmp_path / "img" / f"{i}.png", size=(16, 16) if mm == 3 else (24, 24))
        grey(tmp_path / "img" / f"{i}_m.png", size=(16, 16) if mm == 3 else (24, 24), value=255)
        rows.append(f"{i},{mm},{disease},img/{i}.png,img/{i}_m.png")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_labels_filter_by_disease_and_scan(tmp_path):
    folder = write_labelled(tmp_path)
    normal3 = realdata.load_folder(folder, scan_mm=3, disease="NORMAL")
    assert normal3.ids == ("0", "3") and normal3.large_vessel_masks.all()
    assert realdata.load_folder(folder, scan_mm=3, disease=["dr"]).ids == ("1",)
    assert realdata.load_folder(folder, scan_mm=3, disease="all").ids == ("0", "1", "3")
    assert realdata.load_folder(folder, scan_mm=6).images.shape == (1, 24, 24)
    with pytest.raises(ValueError, match="no rows with disease"):
        realdata.load_folder(folder, disease="AMD")
    with pytest.raises(ValueError, match="size 24x24"):
        realdata.load_folder(folder, disease="all")  # 3 mm and 6 mm mixed


def test_labels_missing_image_is_named(tmp_path):
    folder = write_labelled(tmp_path)
    (folder / "img" / "3.png").unlink()
    with pytest.raises(ValueError, match=r"3\.png' of id 3 does not exist"):
        realdata.load_folder(folder, scan_mm=3)


@pytest.mark.skipif(not (OCTA500 / "labels.csv").is_file(), reason="OCTA-500 dev folder absent (set SVR_OCTA500)")
def test_octa500_normal_3mm():
    rows = realdata.list_images(OCTA500, scan_mm=3, disease="NORMAL")
    assert len(rows) == 120
    real = realdata.load_folder(OCTA500, scan_mm=3, disease="NORMAL", size_px=304, limit=4)
    assert real.images.shape == (4, 304, 304) and real.large_vessel_masks is not None
    assert 0.25 < real.images.mean() < 0.5
