"""Image reading and writing: bit depths, modes, EXIF orientation, clear errors; tensor conversions."""

from __future__ import annotations

import io as bytes_io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from irconstyle.data import io

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (13, 17, 3), dtype=np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8bit_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"image{suffix}"
    io.write_image(path, RGB8)
    pixels = io.read_image(path)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, RGB8)
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, readable as the umask allows


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_read_back_close(tmp_path: Path, suffix: str) -> None:
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, axis=0).repeat(3, axis=2)
    io.write_image(tmp_path / f"image{suffix}", smooth, jpeg_quality=98)
    pixels = io.read_image(tmp_path / f"image{suffix}")
    assert pixels.shape == smooth.shape and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_round_trip_keeps_16_bits(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"image{suffix}"
    io.write_image(path, RGB16)
    pixels = io.read_image(path)
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, RGB16)


def test_16bit_greyscale_png_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = RGB16[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")  # Pillow's own encoder, adaptive row filters
    pixels = io.read_image(tmp_path / "grey.png")
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, np.repeat(grey[..., None], 3, axis=2))


def test_16bit_png_decoder_matches_pillow_on_adaptively_filtered_data(tmp_path: Path) -> None:
    gradient = (np.cumsum(RNG.integers(0, 900, (40, 50)), axis=1) % 65536).astype(np.uint16)
    Image.fromarray(gradient).save(tmp_path / "g.png")
    decoded = io._decode_png16((tmp_path / "g.png").read_bytes(), tmp_path / "g.png")
    np.testing.assert_array_equal(decoded[..., 0], gradient)


def _reference_filter(rows: np.ndarray, kinds: list[int], pixel_bytes: int) -> np.ndarray:
    """PNG row filters written out pixel by pixel, as in the PNG specification."""
    height, width = rows.shape
    out = np.zeros_like(rows)
    for r in range(height):
        for c in range(width):
            left = int(rows[r, c - pixel_bytes]) if c >= pixel_bytes else 0
            up = int(rows[r - 1, c]) if r > 0 else 0
            up_left = int(rows[r - 1, c - pixel_bytes]) if r > 0 and c >= pixel_bytes else 0
            estimate = left + up - up_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
            paeth = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
            predicted = [0, left, up, (left + up) // 2, paeth][kinds[r]]
            out[r, c] = (int(rows[r, c]) - predicted) % 256
    return out


def test_unfilter_undoes_all_five_png_filters() -> None:
    pixel_bytes = 6
    raw = RNG.integers(0, 256, (10, 7 * pixel_bytes), dtype=np.uint8)
    kinds = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    filtered = _reference_filter(raw, kinds, pixel_bytes)
    restored = io._unfilter(filtered.reshape(10, 7, pixel_bytes), np.array(kinds, np.uint8))
    np.testing.assert_array_equal(restored.reshape(10, -1), raw)


def test_greyscale_and_palette_are_converted_explicitly(tmp_path: Path) -> None:
    grey = RGB8[..., 1]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))
    palette = Image.fromarray(RGB8).quantize(colors=16)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))
    Image.fromarray(grey).convert("1").save(tmp_path / "bilevel.png")
    assert set(np.unique(io.read_image(tmp_path / "bilevel.png"))) <= {0, 255}


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_with_one_warning_naming_the_file(tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(RGB8).convert(mode)
    image.save(tmp_path / "alpha.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = io.read_image(tmp_path / "alpha.png")
    assert len(caught) == 1 and issubclass(caught[0].category, io.AlphaDroppedWarning)
    assert "alpha.png" in str(caught[0].message)
    np.testing.assert_array_equal(pixels, np.asarray(image.convert("RGB")))


def test_16bit_rgba_png_drops_alpha_and_keeps_depth(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 65536, (5, 6, 4), dtype=np.uint16)
    rows = np.concatenate([np.zeros((5, 1), np.uint8), rgba.astype(">u2").view(np.uint8).reshape(5, -1)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 16, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b""))
    (tmp_path / "rgba16.png").write_bytes(data)
    with pytest.warns(io.AlphaDroppedWarning):
        pixels = io.read_image(tmp_path / "rgba16.png")
    np.testing.assert_array_equal(pixels, rgba[..., :3])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(RGB8).save(tmp_path / "oriented.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "oriented.png")).convert("RGB"))
    np.testing.assert_array_equal(io.read_image(tmp_path / "oriented.png"), expected)


def test_exif_orientation_applies_to_16bit_png(tmp_path: Path) -> None:
    io.write_image(tmp_path / "plain.png", RGB16)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = (tmp_path / "plain.png").read_bytes()
    body = exif.tobytes()
    exif_chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    iend = data.rindex(b"IEND") - 4
    (tmp_path / "rotated.png").write_bytes(data[:iend] + exif_chunk + data[iend:])
    np.testing.assert_array_equal(io.read_image(tmp_path / "rotated.png"), np.rot90(RGB16, 3))


def test_bad_files_raise_one_clear_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(io.ImageReadError, match="missing.png: no such file"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(io.ImageReadError, match="notes.png: not an image"):
        io.read_image(tmp_path / "notes.png")
    for suffix in (".png", ".jpg"):
        io.write_image(tmp_path / f"whole{suffix}", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        data = (tmp_path / f"whole{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        with pytest.raises(io.ImageReadError, match=rf"cut\{suffix}: truncated or corrupt"):
            io.read_image(tmp_path / f"cut{suffix}")


def test_corrupt_and_truncated_16bit_png_are_errors(tmp_path: Path) -> None:
    io.write_image(tmp_path / "good.png", RGB16)
    data = bytearray((tmp_path / "good.png").read_bytes())
    (tmp_path / "cut.png").write_bytes(bytes(data[:60]))
    with pytest.raises(io.ImageReadError, match="cut.png"):
        io.read_image(tmp_path / "cut.png")
    data[50] ^= 0xFF  # inside IDAT: the chunk's CRC no longer matches
    (tmp_path / "flipped.png").write_bytes(bytes(data))
    with pytest.raises(io.ImageReadError, match="flipped.png: corrupt PNG"):
        io.read_image(tmp_path / "flipped.png")


def test_unsupported_pixel_format_is_an_error(tmp_path: Path) -> None:
    Image.fromarray(RNG.random((8, 8)).astype(np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(io.ImageReadError, match="float.tif: unsupported pixel format 'F'"):
        io.read_image(tmp_path / "float.tif")


def test_write_rejects_what_it_cannot_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot store 16-bit"):
        io.write_image(tmp_path / "deep.jpg", RGB16)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        io.write_image(tmp_path / "float.png", RGB8 / 255.0)
    with pytest.raises(ValueError, match="H×W×3"):
        io.write_image(tmp_path / "four.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="unknown image suffix"):
        io.write_image(tmp_path / "image.gif", RGB8)
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


def test_float_and_tensor_conversions() -> None:
    floats = io.image_to_float(RGB8)
    assert floats.dtype == np.float32 and floats.max() <= 1.0
    np.testing.assert_array_equal(io.float_to_image(floats), RGB8)
    np.testing.assert_array_equal(io.float_to_image(io.image_to_float(RGB16), bit_depth=16), RGB16)
    tensor = io.image_to_tensor(RGB8)
    assert tensor.shape == (3, 13, 17) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(io.tensor_to_image(tensor), RGB8)
    np.testing.assert_array_equal(io.tensor_to_image(io.image_to_tensor(RGB16), bit_depth=16), RGB16)
    assert torch.allclose(io.image_to_tensor(RGB16), io.image_to_tensor(io.image_to_float(RGB16)))
    # clamped, then rounded half away from truncation (BasicSR), not truncated
    values = torch.tensor([-0.2, 0.5 / 255 + 1e-6, 1.7]).view(3, 1, 1)
    assert io.tensor_to_image(values).ravel().tolist() == [0, 1, 255]


def test_banded_conversions_equal_the_whole_image_formulas(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    floats = rng.uniform(-0.1, 1.1, (37, 23, 3)).astype(np.float32)
    floats[0, :, 0] = (np.arange(23) + 0.5) / 255  # halfway values, where a rounding difference would show
    original = floats.copy()
    for band_values in (1, 100, 10**6):  # a row per band, several rows, the whole image in one
        monkeypatch.setattr(io, "CONVERSION_BAND_VALUES", band_values)
        for bits, dtype, scale in ((8, np.uint8, 255), (16, np.uint16, 65535)):
            expected = np.rint(np.clip(floats.astype(np.float64), 0, 1) * scale).astype(dtype)
            np.testing.assert_array_equal(io.float_to_image(floats, bits), expected)
            tensor = torch.from_numpy(floats.transpose(2, 0, 1).copy())
            np.testing.assert_array_equal(io.tensor_to_image(tensor, bits), expected)
        np.testing.assert_array_equal(floats, original)  # the input is never changed in place
    for pixels in (RGB8, RGB16):
        expected = np.asarray(pixels, np.float32) / np.float32(io.max_value(pixels))
        assert torch.equal(io.image_to_tensor(pixels), torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    half = torch.from_numpy(floats.transpose(2, 0, 1).copy()).to(torch.bfloat16)
    np.testing.assert_array_equal(io.tensor_to_image(half), io.tensor_to_image(half.float()))


def test_large_conversions_hold_a_band_not_a_float64_copy(monkeypatch) -> None:
    import tracemalloc

    floats = np.random.default_rng(0).random((1000, 1000, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        converted = io.float_to_image(floats)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the uint8 output, one float64 band and its row-count rounding; a whole-image float64 copy would be 24 MB
    assert peak < converted.nbytes + 2 * io.CONVERSION_BAND_VALUES * 8 + 2**16


def test_conversion_errors() -> None:
    with pytest.raises(ValueError, match="3×H×W"):
        io.tensor_to_image(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="H×W×3"):
        io.image_to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8, uint16 or float"):
        io.image_to_tensor(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="bit_depth must be 8 or 16"):
        io.float_to_image(np.zeros((2, 2, 3)), bit_depth=12)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        io.max_value(np.zeros(3, np.float32))
    assert io.max_value(RGB16) == 65535


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    buffer = bytes_io.BytesIO()
    Image.fromarray(RGB8).convert("CMYK").save(buffer, format="JPEG", quality=95)
    (tmp_path / "cmyk.jpg").write_bytes(buffer.getvalue())
    pixels = io.read_image(tmp_path / "cmyk.jpg")
    assert pixels.shape == RGB8.shape and pixels.dtype == np.uint8
