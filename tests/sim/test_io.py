"""The PNG encoder used for every image and mask: any decoder must read back exactly the pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from svr_jax.io import grey_png, label_png, png_bytes, to_uint8


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()  # raises on a bad CRC or truncated stream
    assert image.mode == "L"
    return np.asarray(image)


@pytest.mark.parametrize("shape", [(304, 304), (1, 1), (7, 300), (400, 3)])
def test_image_round_trip(shape):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    image[0, 0], image[-1, -1] = 0.0, 1.0  # both ends of the 8-bit range (the sub filter wraps mod 256)
    assert np.array_equal(_decode(png_bytes(image)), to_uint8(image))


def test_mask_and_labels_round_trip():
    rng = np.random.default_rng(1)
    mask = rng.random((304, 304)) > 0.8
    assert np.array_equal(_decode(png_bytes(mask)), mask.astype(np.uint8) * 255)
    labels = rng.integers(0, 40, (96, 128))
    assert np.array_equal(_decode(label_png(labels)), labels)


def test_same_as_pil_pixels_and_not_larger():
    """Same pixels as PIL's encoder; sizes within 10 % (PIL picks a filter per row, we fix one)."""
    rng = np.random.default_rng(2)
    smooth = np.clip(np.cumsum(rng.normal(0, 3, (304, 304)), axis=1) + 128, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(smooth).save(buffer, format="PNG", compress_level=1)
    ours = grey_png(smooth, sub_filter=True)
    assert np.array_equal(_decode(ours), _decode(buffer.getvalue()))
    assert len(ours) <= 1.1 * len(buffer.getvalue())


def test_rejects_colour():
    with pytest.raises(ValueError, match="2-D"):
        grey_png(np.zeros((4, 4, 3), np.uint8), sub_filter=False)
