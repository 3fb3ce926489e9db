"""Safe decoding of any image file to RGB: formats, modes, EXIF orientation, size limits, clear errors."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from babyface.config import DEFAULT_MAX_PIXELS
from babyface.errors import ImageDecodeError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
# Pillow's own bomb check would fire at 2 * MAX_IMAGE_PIXELS; ours (checked from the header) comes first.
Image.MAX_IMAGE_PIXELS = None


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def display_path(path: str | os.PathLike) -> str:
    """A printable form of a path, even when the file name is not valid UTF-8."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class ImageHeader:
    """What the file itself says, before conversion: stored size, Pillow mode and format."""

    width: int
    height: int
    mode: str
    format: str


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` to an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding skip detail that a later resize to that size throws away
    (decoding at 1/2, 1/4 or 1/8 scale while keeping at least ``draft_size`` pixels per side).
    Raises ImageDecodeError with the path and what to do.
    """
    return load_rgb_with_header(path, max_pixels, draft_size)[0]


def load_rgb_with_header(
    path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
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
    return _decode_rgb(path, where, max_pixels, draft_size)


def decode_rgb_bytes(data: bytes, name: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """``load_rgb`` for an image held in memory (e.g. an upload); ``name`` only appears in error messages."""
    if not data:
        raise ImageDecodeError(f"{name}: empty file (0 bytes); send an image")
    return _decode_rgb(io.BytesIO(data), name, max_pixels, None)[0]


def _decode_rgb(source: str | os.PathLike | io.BytesIO, where: str, max_pixels: int, draft_size: int | None) -> tuple[Image.Image, ImageHeader]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as img:
                _check_pixels(img, where, max_pixels)
                header = ImageHeader(img.size[0], img.size[1], img.mode, img.format or "")
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img), header
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{where}: not a readable image (unknown format); remove it or re-export as JPEG/PNG") from None
    except FileNotFoundError:
        raise ImageDecodeError(f"{where}: file not found (broken link?); fix or remove it") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _cannot_decode(where, exc) from None


def _cannot_decode(where: str, exc: Exception) -> ImageDecodeError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ImageDecodeError(f"{where}: cannot decode image ({reason}); re-export it as JPEG/PNG or remove it")


def _check_pixels(img: Image.Image, where: str, max_pixels: int) -> None:
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{where}: image has no pixels ({width}x{height}); remove it")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{where}: image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(possible decompression bomb); downscale it or raise --max-pixels"
        )


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
    array = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        array = array / 257.0  # full 16-bit range onto 0..255
    else:
        low, high = float(array.min()), float(array.max())
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    gray = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
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
