"""Reading and writing images safely, and the one place where pixels become float tensors and back.

:func:`read_image` returns an H×W×3 RGB array whose dtype keeps the file's bit depth: ``uint8`` for 8-bit
files, ``uint16`` for 16-bit ones. Greyscale, palette, CMYK and alpha images are converted explicitly
(an alpha channel is dropped with one warning per file) and the EXIF orientation is applied. Anything
that cannot be trusted (missing, a folder, empty, not an image, truncated, corrupt, an unsupported pixel
format, an animation, more pixels than Pillow's decompression-bomb limit) raises :class:`ImageReadError`
with one line naming the file.

Pillow decodes everything except 16-bit colour files, which it silently reduces to 8 bits: 16-bit colour
PNGs are decoded and encoded here (zlib and numpy), 16-bit colour TIFFs go through ``tifffile``.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from irconstyle.atomic import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""File suffixes treated as images when scanning folders (compared in lower case)."""

_MAX_VALUE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112


class ImageReadError(ValueError):
    """An image file cannot be read as trustworthy pixels; the message names the file and the problem."""


class AlphaDroppedWarning(UserWarning):
    """An image had an alpha channel, which restoration ignores."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an H×W×3 RGB array: ``uint8`` for 8-bit files, ``uint16`` for 16-bit ones."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise ImageReadError(
                    f"{path}: an animation or multi-page file ({frames} frames); restore its frames as separate images"
                )
            high_bit_colour = _is_high_bit_colour(image)  # before anything loads the pixels and drops .tile
            if high_bit_colour:
                pixels = _read_high_bit_colour(path, image)
            else:
                image.load()
                pixels = _pillow_to_array(image, path)
            orientation = _orientation(image)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (no decoder recognises it)") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{path}: too many pixels to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError, zlib.error) as error:
        raise ImageReadError(f"{path}: truncated or corrupt image data ({error})") from None
    pixels = _to_rgb(pixels, path)
    return np.ascontiguousarray(_apply_orientation(pixels, orientation))


def write_image(path: str | os.PathLike, image: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Write an H×W×3 (or H×W) ``uint8`` or ``uint16`` array; the format follows the suffix.

    16-bit arrays are kept 16-bit, which only PNG and TIFF can store. The file is written to a temporary
    name first and renamed, so an interrupted write never leaves a truncated image behind.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unknown image suffix {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    image = np.asarray(image)
    if image.dtype not in _MAX_VALUE:
        raise ValueError(
            f"{path}: write_image takes uint8 or uint16 pixels, got {image.dtype}; "
            "convert floats with float_to_image or tensor_to_image first"
        )
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{path}: expected an H×W×3 or H×W array, got shape {image.shape}")
    high_bit = image.dtype == np.uint16
    if high_bit and suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(f"{path}: {suffix} cannot store 16-bit pixels; write .png or .tif, or convert to uint8")
    with atomic_write(path, suffix=suffix) as temporary:
        if high_bit and suffix == ".png":
            temporary.write_bytes(_encode_png16(image))
        elif high_bit:
            _tifffile(path).imwrite(temporary, image, photometric="rgb" if image.ndim == 3 else "minisblack")
        else:
            options = {"quality": jpeg_quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
            Image.fromarray(image).save(temporary, format=Image.registered_extensions()[suffix], **options)


def max_value(image: np.ndarray) -> int:
    """The white level of an integer image: 255 for ``uint8``, 65535 for ``uint16``."""
    try:
        return _MAX_VALUE[np.asarray(image).dtype]
    except KeyError:
        raise ValueError(f"expected uint8 or uint16 pixels, got {np.asarray(image).dtype}") from None


def image_to_float(image: np.ndarray) -> np.ndarray:
    """``uint8``/``uint16`` H×W×3 pixels -> float32 in [0, 1], same layout."""
    return np.asarray(image, dtype=np.float32) / np.float32(max_value(image))


CONVERSION_BAND_VALUES = 1 << 20
"""Pixel conversions work on bands of rows of about this many values, so that a large photo's float64
intermediates cost a band, not a copy of the whole image."""


def float_to_image(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float pixels in [0, 1] -> ``uint8`` (bit_depth 8) or ``uint16`` (16): clipped, scaled, rounded in float64."""
    dtype = _dtype_for(bit_depth)
    scale = float(_MAX_VALUE[np.dtype(dtype)])
    image = np.asarray(image)
    if image.ndim == 0:
        return np.rint(np.clip(np.float64(image), 0.0, 1.0) * scale).astype(dtype)
    converted = np.empty(image.shape, dtype=dtype)
    rows = max(1, CONVERSION_BAND_VALUES // max(1, image[:1].size))
    for top in range(0, image.shape[0], rows):
        band = image[top:top + rows].astype(np.float64)  # a copy: the caller's array is never touched
        np.clip(band, 0.0, 1.0, out=band)
        band *= scale
        np.rint(band, out=band)
        converted[top:top + rows] = band
    return converted


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 pixels (``uint8``, ``uint16`` or float in [0, 1]) -> float32 tensor 3×H×W in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {image.shape}")
    if image.dtype in _MAX_VALUE:  # as image_to_float, one channel at a time into the output
        planes = np.empty((3, *image.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.divide(image[:, :, channel], np.float32(max_value(image)), out=planes[channel], dtype=np.float32)
        return torch.from_numpy(planes)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected uint8, uint16 or float pixels, got {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def tensor_to_image(tensor: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """3×H×W float tensor in [0, 1] -> H×W×3 ``uint8``/``uint16``: clamped, scaled, rounded (BasicSR style)."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a 3×H×W tensor, got shape {tuple(tensor.shape)}")
    values = tensor.detach().cpu()
    if values.dtype not in (torch.float32, torch.float64):  # half precisions widen exactly
        values = values.float()
    return float_to_image(values.numpy().transpose(1, 2, 0), bit_depth)


def _dtype_for(bit_depth: int) -> type:
    if bit_depth == 8:
        return np.uint8
    if bit_depth == 16:
        return np.uint16
    raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make a readable image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Undo the camera's EXIF orientation (the same transforms as ``ImageOps.exif_transpose``)."""
    if orientation in (2, 4, 5, 7):
        pixels = pixels[:, ::-1]
    if orientation in (3, 4):
        pixels = np.rot90(pixels, 2)
    elif orientation in (5, 8):
        pixels = np.rot90(pixels, 1)
    elif orientation in (6, 7):
        pixels = np.rot90(pixels, 3)
    return pixels


def _raw_mode(image: Image.Image) -> str:
    if not image.tile:
        return ""
    args = image.tile[0].args
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _is_high_bit_colour(image: Image.Image) -> bool:
    return image.mode in ("RGB", "RGBA", "LA") and ";16" in _raw_mode(image)


def _read_high_bit_colour(path: Path, image: Image.Image) -> np.ndarray:
    if image.format == "PNG":
        return _decode_png16(path.read_bytes(), path)
    if image.format == "TIFF":
        return _tifffile(path).imread(path)
    raise ImageReadError(f"{path}: 16-bit {image.mode} {image.format} files are not supported; use PNG or TIFF")


def _tifffile(path: Path):
    try:
        import tifffile
    except ImportError:
        raise ImageReadError(f"{path}: 16-bit colour TIFF needs the tifffile package (pip install tifffile)") from None
    return tifffile


def _pillow_to_array(image: Image.Image, path: Path) -> np.ndarray:
    """Pillow image -> uint8/uint16 array with 1, 2 (grey + alpha), 3 or 4 (RGBA) channels."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L", "LA", "RGB", "RGBA"):
        image = image.convert("L") if mode == "1" else image
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La", "PA"):
        image = image.convert("RGBA" if mode in ("RGBa", "La", "PA") else "RGB")
    elif mode.startswith("I;16") or mode == "I":
        pixels = np.asarray(image)
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise ImageReadError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return pixels.astype(np.uint16)
    else:
        raise ImageReadError(f"{path}: unsupported pixel format {mode!r}")
    return np.asarray(image)


def _to_rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    if channels in (2, 4):
        warnings.warn(f"{path}: alpha channel dropped", AlphaDroppedWarning, stacklevel=3)
        pixels = pixels[..., : channels - 1]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if pixels.dtype not in _MAX_VALUE:
        raise ImageReadError(f"{path}: unsupported sample type {pixels.dtype}")
    return pixels


# --- 16-bit colour PNG ----------------------------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _png_chunks(data: bytes, path: Path):
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageReadError(f"{path}: not a PNG file")
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        crc = data[offset + 8 + length : offset + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageReadError(f"{path}: truncated PNG ({kind.decode('latin-1')} chunk cut short)")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ImageReadError(f"{path}: corrupt PNG (CRC mismatch in {kind.decode('latin-1')} chunk)")
        yield kind, body
        if kind == b"IEND":
            return
        offset += 12 + length
    raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")


def _decode_png16(data: bytes, path: Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG into a uint16 H×W×C array."""
    header, compressed = None, []
    for kind, body in _png_chunks(data, path):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
    if header is None:
        raise ImageReadError(f"{path}: corrupt PNG (no IHDR chunk)")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 16 or colour_type not in _PNG_CHANNELS:
        raise ImageReadError(f"{path}: unexpected PNG format (bit depth {depth}, colour type {colour_type})")
    if interlace:
        raise ImageReadError(f"{path}: interlaced 16-bit PNG is not supported; re-save it without interlacing")
    channels = _PNG_CHANNELS[colour_type]
    pixel_bytes = 2 * channels
    try:
        raw = zlib.decompress(b"".join(compressed))
    except zlib.error as error:
        raise ImageReadError(f"{path}: corrupt PNG image data ({error})") from None
    row_bytes = 1 + width * pixel_bytes
    if len(raw) != height * row_bytes:
        raise ImageReadError(f"{path}: truncated PNG image data ({len(raw)} of {height * row_bytes} bytes)")
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes)
    filters = rows[:, 0]
    if filters.max(initial=0) > 4:
        raise ImageReadError(f"{path}: corrupt PNG (unknown row filter {filters.max()})")
    samples = _unfilter(rows[:, 1:].reshape(height, width, pixel_bytes), filters)
    return samples.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo PNG row filters on H×W×B bytes.

    Each pixel depends on its left, upper and upper-left neighbours, so pixels on one anti-diagonal
    (row + column constant) are independent: the loop runs over the H + W − 1 diagonals, each step
    vectorised over all rows and with every filter type evaluated and selected per row.
    """
    height, width, _ = filtered.shape
    out = np.zeros((height + 1, width + 1, filtered.shape[2]), np.int16)  # zero row above, zero column left
    filtered = filtered.astype(np.int16)
    for diagonal in range(height + width - 1):
        rows = np.arange(max(0, diagonal - width + 1), min(height, diagonal + 1))
        cols = diagonal - rows
        left, up, up_left = out[rows + 1, cols], out[rows, cols + 1], out[rows, cols]
        estimate = np.abs(up - up_left), np.abs(left - up_left), np.abs(left + up - 2 * up_left)
        paeth = np.where(
            (estimate[0] <= estimate[1]) & (estimate[0] <= estimate[2]),
            left,
            np.where(estimate[1] <= estimate[2], up, up_left),
        )
        predictions = np.stack([np.zeros_like(left), left, up, (left + up) >> 1, paeth])
        kind = filters[rows]
        predicted = predictions[kind, np.arange(rows.size)]
        out[rows + 1, cols + 1] = (filtered[rows, cols] + predicted) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def _encode_png16(image: np.ndarray) -> bytes:
    """Encode uint16 H×W or H×W×3 pixels as a 16-bit PNG (filter "Sub" on every row, zlib level 6)."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    samples = np.ascontiguousarray(image, dtype=">u2").view(np.uint8).reshape(height, width * channels * 2)
    pixel_bytes = 2 * channels
    filtered = samples.copy()
    filtered[:, pixel_bytes:] -= samples[:, :-pixel_bytes]  # uint8 arithmetic wraps modulo 256, as PNG wants
    rows = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)
    colour_type = 0 if channels == 1 else 2

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
