"""babyface.data.images: every mode/format decodes to the right RGB content; bad files give one clear error."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from babyface.data.images import DEFAULT_MAX_PIXELS, display_path, is_image_file, load_resized, load_rgb
from babyface.errors import DataError, ImageDecodeError
from tests.conftest import png_claiming

FIX_WORDS = ("remove", "re-export", "re-copy", "downscale", "raise --max-pixels", "fix")


def rgb(path) -> np.ndarray:
    img = load_rgb(path)
    assert img.mode == "RGB"
    return np.asarray(img)


def decode_error(path, **kwargs) -> str:
    """Load ``path`` expecting ImageDecodeError; check the message is one printable line naming the file and a fix."""
    with pytest.raises(ImageDecodeError) as info:
        load_rgb(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    message.encode("utf-8")  # printable even for non-UTF-8 names
    assert display_path(path) in message
    assert any(word in message for word in FIX_WORDS), message
    return message


def noise_jpeg_bytes(width: int = 96, height: int = 64) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# ---------------------------------------------------------------- modes and formats


def test_rgb_passes_through_exactly(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb(tmp_path / "a.png"), pixels)


def test_grayscale_l(tmp_path: Path) -> None:
    gray = np.array([[0, 77, 255]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = rgb(tmp_path / "g.png")
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_one_bit(tmp_path: Path) -> None:
    img = Image.new("1", (4, 2), 0)
    img.putpixel((1, 0), 1)
    img.putpixel((3, 1), 1)
    img.save(tmp_path / "b.png")
    out = rgb(tmp_path / "b.png")
    expected = np.zeros((2, 4, 3), np.uint8)
    expected[0, 1] = expected[1, 3] = 255
    np.testing.assert_array_equal(out, expected)


def test_la_transparent_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("LA", (3, 1))
    img.putdata([(100, 255), (100, 0), (0, 128)])
    img.save(tmp_path / "la.png")
    out = rgb(tmp_path / "la.png")
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 2)  # half-transparent black on white


def test_rgba_transparent_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(10, 20, 30, 255), (10, 20, 30, 0), (0, 0, 200, 128)])
    img.save(tmp_path / "rgba.png")
    out = rgb(tmp_path / "rgba.png").astype(int)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])  # not black: transparency is white
    np.testing.assert_allclose(out[0, 2], [127, 127, 227], atol=2)


def _palette_image() -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    img.putdata([0, 1, 2])
    return img


def test_palette_without_transparency(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(rgb(tmp_path / "p.png")[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_palette_with_transparency(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "pt.png", transparency=1)
    with Image.open(tmp_path / "pt.png") as img:
        assert img.mode == "P" and "transparency" in img.info
    np.testing.assert_array_equal(rgb(tmp_path / "pt.png")[0], [[255, 0, 0], [255, 255, 255], [0, 0, 255]])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = rgb(tmp_path / "c.jpg").astype(int)
    assert out.shape == (8, 8, 3)
    assert np.all(out[..., 0] > 230) and np.all(out[..., 1:] < 25)  # red


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_keeps_brightness(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 32768, 65535], [32768, 32768, 32768]], np.uint16)
    Image.fromarray(values).save(tmp_path / f"g16{suffix}")
    assert Image.open(tmp_path / f"g16{suffix}").mode.startswith("I")
    out = rgb(tmp_path / f"g16{suffix}").astype(int)
    assert np.all(out[0, 0] == 0)
    assert np.all(np.abs(out[0, 1] - 128) <= 1)  # mid-grey, not saturated at 255
    assert np.all(out[0, 2] == 255)
    assert np.all(np.abs(out[1] - 128) <= 1)


def test_uniform_16_bit_mid_grey_tiff(tmp_path: Path) -> None:
    Image.fromarray(np.full((6, 5), 32768, np.uint16)).save(tmp_path / "flat.tif")
    with Image.open(tmp_path / "flat.tif") as img:
        assert img.mode == "I;16"
    out = rgb(tmp_path / "flat.tif").astype(int)
    assert out.shape == (6, 5, 3)
    assert np.all(np.abs(out - 128) <= 1)


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        (np.array([[-5000, 0, 5000], [100000, -5000, 0]], np.int32), "I"),
        (np.array([[0.0, 0.5, 1.0], [2.0, 0.0, 0.5]], np.float32), "F"),
    ],
)
def test_32_bit_tiff_is_rescaled_to_8_bit(tmp_path: Path, values: np.ndarray, mode: str) -> None:
    Image.fromarray(values).save(tmp_path / "deep.tif")
    with Image.open(tmp_path / "deep.tif") as img:
        assert img.mode == mode
    out = rgb(tmp_path / "deep.tif").astype(int)
    assert out.shape == (2, 3, 3)
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])
    gray = out[..., 0]
    assert gray[0, 0] == 0 and gray[1, 0] == 255  # min → black, max → white
    # order is kept and nothing is saturated except the maximum
    flat = values.ravel()
    assert np.all(np.diff(gray.ravel()[np.argsort(flat, kind="stable")]) >= 0)
    assert (gray == 255).sum() == 1


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp(tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    np.testing.assert_array_equal(rgb(tmp_path / "a.webp"), pixels)


def test_bmp(tmp_path: Path) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(rgb(tmp_path / "a.bmp"), pixels)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 4), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as img:
        assert getattr(img, "n_frames", 1) == 3
    out = rgb(tmp_path / "anim.gif")
    assert out.shape == (4, 6, 3)
    assert np.all(out == np.array([255, 0, 0], np.uint8))


@pytest.mark.parametrize(("orientation", "size"), [(1, (40, 20)), (6, (20, 40)), (8, (20, 40)), (3, (40, 20))])
def test_exif_orientation_applied(tmp_path: Path, orientation: int, size: tuple[int, int]) -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # stored: left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = load_rgb(tmp_path / "o.jpg")
    assert out.size == size
    arr = np.asarray(out).astype(int)
    red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
    if orientation == 6:  # rotate 90° clockwise: the stored left side ends up on top
        first, second = arr[5, 10], arr[35, 10]
    elif orientation == 8:  # rotate 90° counter-clockwise: the stored left side ends up at the bottom
        first, second = arr[35, 10], arr[5, 10]
    elif orientation == 3:  # rotate 180°
        first, second = arr[10, 35], arr[10, 5]
    else:
        first, second = arr[10, 5], arr[10, 35]
    assert np.abs(first - red).max() < 20 and np.abs(second - blue).max() < 20


# ---------------------------------------------------------------- load_resized


@pytest.mark.parametrize("size", [16, 64])
def test_load_resized_shape_and_dtype(tmp_path: Path, size: int) -> None:
    (tmp_path / "n.jpg").write_bytes(noise_jpeg_bytes(200, 120))
    out = load_resized(tmp_path / "n.jpg", size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8


def test_load_resized_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (12, 200, 99)).save(tmp_path / "dot.png")
    out = load_resized(tmp_path / "dot.png", 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.all(out == np.array([12, 200, 99], np.uint8))


def test_load_resized_grayscale_16_bit(tmp_path: Path) -> None:
    Image.fromarray(np.full((10, 30), 32768, np.uint16)).save(tmp_path / "g.png")
    out = load_resized(tmp_path / "g.png", 16)
    assert out.shape == (16, 16, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 1)


def test_is_image_file() -> None:
    assert is_image_file("a/B.JPG") and is_image_file("x.tiff") and is_image_file("x.webp")
    assert not is_image_file("README.txt") and not is_image_file("jpg")


# ---------------------------------------------------------------- errors


def test_error_is_a_data_error() -> None:
    assert issubclass(ImageDecodeError, DataError)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in decode_error(tmp_path / "empty.jpg")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not an image\nsecond line\n")
    decode_error(tmp_path / "notes.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = noise_jpeg_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    decode_error(tmp_path / "half.jpg")


def test_truncated_jpeg_with_draft_size(tmp_path: Path) -> None:
    data = noise_jpeg_bytes(256, 256)
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError):
        load_resized(tmp_path / "half.jpg", 32)


def test_truncated_png(tmp_path: Path) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    decode_error(tmp_path / "half.png")




def test_decompression_bomb_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_claiming(20000, 20000))
    with Image.open(tmp_path / "bomb.png") as img:  # the patched header is valid: Pillow reads the size
        assert img.size == (20000, 20000)
    assert 20000 * 20000 > DEFAULT_MAX_PIXELS
    message = decode_error(tmp_path / "bomb.png")
    assert "limit" in message and f"{DEFAULT_MAX_PIXELS:,}" in message and "20000x20000" in message


def test_max_pixels_argument(tmp_path: Path) -> None:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.png", max_pixels=200).size == (20, 10)
    assert "limit of 199" in decode_error(tmp_path / "a.png", max_pixels=199)


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "missing.jpg")
    decode_error(link)


def test_missing_file(tmp_path: Path) -> None:
    decode_error(tmp_path / "nothing-here.png")


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    decode_error(tmp_path / "folder.jpg")


def _bytes_name(tmp_path: Path, name: bytes) -> bytes:
    return os.path.join(os.fsencode(tmp_path), name)


def test_non_utf8_name_valid_image_loads(tmp_path: Path) -> None:
    raw = _bytes_name(tmp_path, b"\xff\xfe.jpg")
    with open(raw, "wb") as handle:
        Image.new("RGB", (8, 6), (0, 255, 0)).save(handle, format="JPEG", quality=95)
    for path in (raw, os.fsdecode(raw), Path(os.fsdecode(raw))):
        out = np.asarray(load_rgb(path)).astype(int)
        assert out.shape == (6, 8, 3)
        assert np.abs(out - [0, 255, 0]).max() < 10
    assert load_resized(os.fsdecode(raw), 16).shape == (16, 16, 3)


def test_non_utf8_name_invalid_image_message_is_printable(tmp_path: Path) -> None:
    raw = _bytes_name(tmp_path, b"bad-\xff\xfe.jpg")
    with open(raw, "wb") as handle:
        handle.write(b"not a jpeg")
    for path in (raw, os.fsdecode(raw)):
        with pytest.raises(ImageDecodeError) as info:
            load_rgb(path)
        message = str(info.value)
        message.encode("utf-8")  # must not raise UnicodeEncodeError
        assert "bad-" in message and ".jpg" in message and "\n" not in message


def test_display_path_is_printable() -> None:
    shown = display_path(os.fsdecode(b"/x/\xff.jpg"))
    shown.encode("utf-8")
    assert shown.startswith("/x/") and shown.endswith(".jpg")


# ---------------------------------------------------------------- formats by content, memory before decoding



def _eps_bytes() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"


@pytest.mark.parametrize("name, make", [
    ("eps-named.png", _eps_bytes),
    ("tga-named.png", lambda: _saved(Image.new("RGB", (8, 8), (1, 2, 3)), "TGA")),
    ("pcx-named.png", lambda: _saved(Image.new("RGB", (8, 8), (1, 2, 3)), "PCX")),
    ("ico-named.png", lambda: _saved(Image.new("RGB", (16, 16), (1, 2, 3)), "ICO")),
])
def test_formats_off_the_allow_list_are_refused_whatever_the_name(tmp_path: Path, name, make, monkeypatch) -> None:
    """EPS would be handed to Ghostscript by Pillow: a stand-in ``gs`` on PATH proves it is never called."""
    marker = tmp_path / "gs-was-called"
    fake_gs = tmp_path / "bin" / "gs"
    fake_gs.parent.mkdir()
    fake_gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_gs.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / name).write_bytes(make())
    assert "not a readable image" in decode_error(tmp_path / name)
    from babyface.data.images import decode_rgb_bytes

    with pytest.raises(ImageDecodeError, match="not a readable image"):
        decode_rgb_bytes(make(), name="upload")
    assert not marker.exists()


def _saved(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_documented_format_decodes_from_bytes_whatever_it_is_called(fmt) -> None:
    from babyface.data.images import decode_rgb_bytes, read_header

    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    data = _saved(Image.new("RGB", (24, 16), (200, 100, 50)), fmt)
    image, header = decode_rgb_bytes(data, name="upload.bin")
    assert image.size == (24, 16) and header.format == fmt and read_header(data).format == fmt


@pytest.mark.parametrize("mode, side", [("I;16", 9999), ("RGB", 9999), ("L", 9999), ("RGBA", 8000)])
def test_small_files_that_would_decode_huge_are_refused_from_the_header(mode, side) -> None:
    """9999×9999 is under the pixel limit, but 16-bit gray costs ~1.9 GB on the way to RGB: refused before decoding."""
    from babyface.data.images import decode_cost, decode_rgb_bytes, read_header
    from babyface.errors import ImageTooLargeError

    data = png_claiming(side, side, mode)
    assert len(data) < 1000 and side * side <= DEFAULT_MAX_PIXELS
    header = read_header(data)
    assert decode_cost(header) > 1024 * 2**20
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 1024 MB; downscale it") as info:
        decode_rgb_bytes(data, name="the upload")
    assert info.value.limit == "memory" and info.value.header == header


def test_decode_cost_counts_the_conversion_of_each_mode() -> None:
    from babyface.data.images import ImageHeader, decode_cost

    rgb_cost = decode_cost(ImageHeader(100, 100, "RGB", "PNG"))
    assert rgb_cost == 100 * 100 * (4 + 7)
    assert decode_cost(ImageHeader(100, 100, "I;16", "PNG")) > decode_cost(ImageHeader(100, 100, "L", "PNG"))
    assert decode_cost(ImageHeader(100, 100, "RGBA", "PNG")) > rgb_cost
    assert decode_cost(ImageHeader(100, 100, "RGB", "JPEG"), scale=2) == rgb_cost // 4


def test_a_jpeg_over_the_budget_decodes_reduced_when_allowed_and_keeps_its_full_size_header() -> None:
    from babyface.data.images import decode_cost, decode_rgb_bytes
    from babyface.errors import ImageTooLargeError

    data = noise_jpeg_bytes(800, 600)
    full = decode_cost(decode_rgb_bytes(data)[1]) / 2**20
    budget = full / 3  # full size does not fit, half size (a quarter of the memory) does
    with pytest.raises(ImageTooLargeError):
        decode_rgb_bytes(data, max_decode_mb=budget)
    image, header = decode_rgb_bytes(data, max_decode_mb=budget, reduce=True)
    assert image.size == (400, 300) and (header.width, header.height) == (800, 600)


def test_sixteen_bit_conversion_costs_at_most_what_the_budget_counted(tmp_path: Path) -> None:
    import tracemalloc

    from babyface.data.images import decode_cost, read_header

    side = 1000
    array = (np.arange(side * side, dtype=np.uint32) % 65536).astype(np.uint16).reshape(side, side)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode.startswith("I;16")
    tracemalloc.start()
    load_rgb(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < decode_cost(read_header(path.read_bytes()))  # numpy's arrays are traced; float64 copies would not fit
