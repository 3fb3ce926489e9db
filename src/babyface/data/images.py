"""Safe decoding of any image file to RGB: formats, modes, EXIF orientation, size limits, clear errors.

Files are opened by what their bytes are, never by their name or a declared type, and only as one of the formats
the docs list (``ALLOWED_FORMATS``): Pillow never reaches its EPS/PostScript plugin (which hands the file to
Ghostscript) or any other. Before a pixel is decoded, the memory decoding and converting it would take is estimated
from the header and checked against a budget (``decode_cost``): a small file cannot decode huge.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from babyface.config import DEFAULT_MAX_DECODE_MB, DEFAULT_MAX_PIXELS
from babyface.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# Pillow opens the JPEG that many phones write (a second, preview picture appended) as format MPO
JPEG_FORMATS = ("JPEG", "MPO")
DOCUMENTED_FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights, as Pillow's convert("L")
# bytes per pixel of Pillow's own storage: one-band modes as stored, every multi-band mode (RGB too) in 4 bytes
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}
# bytes per pixel of the intermediate images to_rgb makes on the way to RGB
_CONVERSION_BYTES = {"RGB": 0, "L": 4, "1": 4, "CMYK": 4, "YCbCr": 4, "RGBA": 12, "LA": 12, "PA": 12, "RGBa": 12, "La": 12, "I;16": 10, "I;16B": 10, "I;16L": 10,
                     "I;16N": 10, "I": 10, "F": 10}
_OTHER_CONVERSION_BYTES = 12  # P (through RGBA when it has transparency) and anything rarer: as RGBA
_AFTER_DECODE_BYTES = 4 + 3  # a rotated copy (EXIF orientation) and the caller's uint8 array
# Pillow's own bomb check would fire at 2 * MAX_IMAGE_PIXELS; ours (checked from the header) comes first.
Image.MAX_IMAGE_PIXELS = None


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def display_path(path: str | os.PathLike) -> str:
    """A printable form of a path, even when the file name is not valid UTF-8 or holds control characters
    (an escape sequence in a file name must not reach the terminal: it is shown as ``\x1b``)."""
    text = os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dataclass(frozen=True)
class ImageHeader:
    """What the file itself says, before conversion: stored size, Pillow mode and format."""

    width: int
    height: int
    mode: str
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.format} ({self.mode})"


def decode_cost(header: ImageHeader, scale: int = 1) -> int:
    """Peak bytes that decoding an image with this header (at 1/``scale`` size) and converting it to RGB take."""
    per_pixel = _STORED_BYTES.get(header.mode, 4) + _CONVERSION_BYTES.get(header.mode, _OTHER_CONVERSION_BYTES)
    return -(-header.width // scale) * -(-header.height // scale) * (per_pixel + _AFTER_DECODE_BYTES)


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None,
             max_decode_mb: float = DEFAULT_MAX_DECODE_MB) -> Image.Image:
    """Decode ``path`` to an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding skip detail that a later resize to that size throws away
    (decoding at 1/2, 1/4 or 1/8 scale while keeping at least ``draft_size`` pixels per side).
    Raises ImageDecodeError with the path and what to do.
    """
    return load_rgb_with_header(path, max_pixels, draft_size, max_decode_mb)[0]


def load_rgb_with_header(
    path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None,
    max_decode_mb: float = DEFAULT_MAX_DECODE_MB,
) -> tuple[Image.Image, ImageHeader]:
    """``load_rgb`` that also returns the file's own size, mode and format (for dataset audits)."""
    where = display_path(path)
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError(f"{where}: empty file (0 bytes); re-copy or remove it")
    except FileNotFoundError:
        raise ImageDecodeError(f"{where}: file not found (broken link?); fix or remove it") from None
    except OSError as exc:
        raise _cannot_decode(where, exc) from None
    return _decode_rgb(path, where, max_pixels, draft_size, max_decode_mb)


def decode_rgb_bytes(data: bytes, name: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS,
                     max_decode_mb: float = DEFAULT_MAX_DECODE_MB, reduce: bool = False) -> tuple[Image.Image, ImageHeader]:
    """``load_rgb_with_header`` for an image held in memory (e.g. an upload); ``name`` only appears in error messages.

    ``reduce`` lets a JPEG that would not fit ``max_decode_mb`` at full size decode at 1/2, 1/4 or 1/8 of it
    (the header keeps the full size, so that boxes can be scaled back).
    """
    if not data:
        raise ImageDecodeError(f"{name}: empty file (0 bytes); send an image")
    return _decode_rgb(io.BytesIO(data), name, max_pixels, None, max_decode_mb, reduce)


def read_header(data: bytes, name: str = "upload") -> ImageHeader:
    """The header of an image held in memory, without decoding a pixel (ImageDecodeError if it is not an allowed image)."""
    try:
        with _open_allowed(io.BytesIO(data), name) as img:
            return _header(img)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _cannot_decode(name, exc) from None


def _open_allowed(source: str | os.PathLike | io.BytesIO, where: str) -> Image.Image:
    try:
        return Image.open(source, formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{where}: not a readable image (not {DOCUMENTED_FORMATS}); remove it or re-export it as "
                               "JPEG/PNG") from None


def _header(img: Image.Image) -> ImageHeader:
    return ImageHeader(img.size[0], img.size[1], img.mode, img.format or "")


def _decode_rgb(source: str | os.PathLike | io.BytesIO, where: str, max_pixels: int, draft_size: int | None,
                max_decode_mb: float, reduce: bool = False) -> tuple[Image.Image, ImageHeader]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open_allowed(source, where) as img:
                header = _header(img)
                _check_pixels(header, where, max_pixels)
                scale = _decode_scale(header, where, max_decode_mb, reduce)
                if img.format in JPEG_FORMATS and (draft_size or scale > 1):
                    # draft decodes at the largest reduction that still leaves the requested size
                    img.draft("RGB", (min(draft_size or header.width, header.width // scale),
                                      min(draft_size or header.height, header.height // scale)))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img), header
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{where}: file not found (broken link?); fix or remove it") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _cannot_decode(where, exc) from None


def _cannot_decode(where: str, exc: Exception) -> ImageDecodeError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ImageDecodeError(f"{where}: cannot decode image ({reason}); re-export it as JPEG/PNG or remove it")


def _check_pixels(header: ImageHeader, where: str, max_pixels: int) -> None:
    width, height = header.width, header.height
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{where}: image has no pixels ({width}x{height}); remove it")
    if header.pixels > max_pixels:
        raise ImageTooLargeError(
            f"{where}: image is {width}x{height} = {header.pixels:,} pixels, over the limit of {max_pixels:,} "
            "(possible decompression bomb); downscale it or raise --max-pixels",
            header=header, limit="pixels")


def _decode_scale(header: ImageHeader, where: str, max_decode_mb: float, reduce: bool) -> int:
    """1, or the smallest JPEG reduction (2, 4, 8) whose decoding fits the budget; ImageTooLargeError if none does."""
    budget = max_decode_mb * 2**20
    scales = (1, 2, 4, 8) if reduce and header.format in JPEG_FORMATS else (1,)
    for scale in scales:
        if decode_cost(header, scale) <= budget:
            return scale
    raise ImageTooLargeError(
        f"{where}: image is {header.describe()}; decoding it would take about {decode_cost(header) / 2**20:,.0f} MB of "
        f"memory, over the limit of {max_decode_mb:g} MB; downscale it or save it as an 8-bit JPEG",
        header=header, limit="memory")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: high-bit-depth images are rescaled, transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """Rescaled in float32, in place: a 16-bit image costs 4 more bytes a pixel on the way, not 8 per copy."""
    array = np.array(img, dtype=np.float32)  # a writable copy
    if img.mode.startswith("I;16"):
        array /= 257.0  # full 16-bit range onto 0..255
    else:
        low, high = float(array.min()), float(array.max())
        array -= low
        array *= 255.0 / (high - low) if high > low else 0.0
    np.rint(array, out=array)
    np.clip(array, 0, 255, out=array)
    gray = Image.fromarray(array.astype(np.uint8), mode="L")
    del array
    return gray.convert("RGB")


def load_resized(path: str | os.PathLike, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode and resize to ``size``×``size`` (the reference squashes, it does not crop); HxWx3 uint8."""
    return load_resized_with_header(path, size, max_pixels)[0]


def load_resized_with_header(path: str | os.PathLike, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageHeader]:
    img, header = load_rgb_with_header(path, max_pixels=max_pixels, draft_size=size)
    return resize_square(img, size), header


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """The model's view of an RGB image: squashed to ``size``×``size``; HxWx3 uint8."""
    img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def luminance_of(rgb: np.ndarray) -> np.ndarray:
    """The float32 luminance (``LUMA``) of RGB pixels on the last axis (…×3, uint8 or float; alpha ignored)."""
    return rgb[..., :3].astype(np.float32) @ np.array(LUMA, np.float32)
