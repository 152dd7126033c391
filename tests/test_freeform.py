"""Free-form input (`workbench ask --image`, the demo's upload tab): what a person can get wrong
is refused with a message naming it, before any large allocation."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workbench.dataset import freeform


def png_header(path, width: int, height: int) -> None:
    """A PNG that declares `width` x `height` RGB pixels and holds none: opening it reads only the
    header, decoding it fails."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_by_name(tmp_path):
    png_header(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ValueError, match="'bomb.png' is too large to open; the largest side may be 4096 px"):
        freeform.load_image(tmp_path / "bomb.png")


def test_a_large_image_is_refused_before_it_is_decoded(tmp_path):
    png_header(tmp_path / "large.png", 10000, 9000)  # decoding it would fail: the check comes first
    with pytest.raises(ValueError, match="'large.png' is 10000x9000 px; the largest side may be 4096 px"):
        freeform.load_image(tmp_path / "large.png")
    png_header(tmp_path / "tiny.png", 4, 300)
    with pytest.raises(ValueError, match="'tiny.png' is 4x300 px; too small to read"):
        freeform.load_image(tmp_path / "tiny.png")


def test_depth_files_in_meters_and_millimeters(tmp_path):
    Image.fromarray(np.full((6, 9), 1500, dtype=np.uint16)).save(tmp_path / "mm.png")
    np.save(tmp_path / "m.npy", np.full((6, 9), 1.5))
    for name in ("mm.png", "m.npy"):
        z = freeform.load_depth(tmp_path / name, (9, 6))
        assert z.dtype == np.float32 and z.shape == (6, 9) and np.allclose(z, 1.5)
    (tmp_path / "junk.npy").write_text("not an array")
    with pytest.raises(ValueError, match="depth map 'junk.npy' is not a .npy array"):
        freeform.load_depth(tmp_path / "junk.npy", (9, 6))
    with pytest.raises(ValueError, match="not a PIL image"):
        freeform.load_depth(Image.new("I;16", (9, 6)), (9, 6))


@pytest.mark.parametrize("value, message", [
    ("1,2,3", r"must be a list of 4 numbers"),
    ("0,100,5,5", "fx, fy must be positive"),
    ([100, "x", 5, 5], "must be a list of 4 numbers"),
])
def test_bad_intrinsics_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        freeform.parse_intrinsics(value)


def test_depth_without_intrinsics_gets_the_upload_camera_and_scales_with_the_image():
    image = Image.new("RGB", (224, 112), (90, 90, 90))
    row = freeform.make_row(image, "What is in the red box <region>?", '[{"label": "red box", "bbox_2d": [10, 10, 60, 60]}]',
                            image_size=112, depth=np.full((112, 224), 3.0, dtype=np.float32))
    assert row["depth"].shape == (56, 112) and np.allclose(row["depth"], 3.0)
    assert row["intrinsics"] == pytest.approx([97.0, 97.0, 56.0, 28.0], abs=0.05)
    plain = freeform.make_row(image, "What is in the red box <region>?", '[{"label": "red box", "bbox_2d": [10, 10, 60, 60]}]')
    assert plain["depth"] is None and plain["intrinsics"] is None
