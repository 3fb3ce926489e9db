"""Synthetic cartoon infant faces (happy / neutral / sad): the built-in default dataset.

Every image has its own random stream, seeded from ``(seed, index)`` through
``numpy.random.SeedSequence``, so image *i* is byte-identical whatever ``n`` is and
images could be rendered in any order or in parallel. Expression parameters come from
overlapping class-conditional distributions; pose, lighting, background clutter, blur,
noise, JPEG quality and grayscale are drawn independently of the class, so the task is
learnable but not trivially separable. Each face also has its own geometry (eye spacing, height and size, nose,
mouth, ears, cheeks, face shape, hairline, a slight turn of the head), so that different synthetic infants are no
more alike than real ones: the near-duplicate guard (data/duplicates.py) must not take them for copies.

Three rendering styles draw the same faces: ``photo`` (the default: cluttered gradient
backgrounds, natural skin tones, lighting and sensor noise), ``studio`` (the same faces and photo
effects on a plain teal backdrop under a strong amber cast) and ``sketch`` (blue ink on plain cream
paper, posterised to a few tones, inked outlines). Studio and sketch are recognisable at a glance
while their expression cues stay learnable, so two styles stand in for two data sources that differ
in look: the basis of the source–class confound benchmark (benchmarks/confound.py). Studio draws
expressions exactly as photo does; sketch changes how they look too.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from babyface.config.datasets import CLASSES, STYLES, SynthConfig
from babyface.errors import BabyfaceError
from babyface.outputs import atomic_path, prepare_output_dir, write_text
from babyface.progress import progress_bar

RGB = tuple[int, int, int]

SKIN_TONES: tuple[RGB, ...] = (  # light to dark
    (255, 224, 200),
    (241, 196, 163),
    (224, 170, 125),
    (192, 132, 88),
    (141, 91, 60),
    (94, 60, 42),
)

DEFAULT_GRAYSCALE_SHARE = 0.2

SKETCH_TONES: tuple[RGB, ...] = (  # sketches shade skin in pale greys, so the inked features stay visible on every face
    (250, 250, 250),
    (238, 238, 240),
    (226, 226, 230),
    (214, 214, 220),
    (202, 202, 210),
    (190, 190, 200),
)

# Class-conditional expression priors: (mean, sd) of a normal, clipped to EXPRESSION_RANGES.
# mouth_curve > 0 is a smile (corners up); brow_angle > 0 (degrees) raises the inner ends (sadness).
EXPRESSION_PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    "happy": {"mouth_curve": (0.6, 0.35), "mouth_open": (0.4, 0.3), "brow_angle": (-3.0, 7.0), "eye_open": (0.55, 0.2)},
    "neutral": {"mouth_curve": (0.0, 0.3), "mouth_open": (0.03, 0.12), "brow_angle": (0.0, 7.0), "eye_open": (0.88, 0.12)},
    "sad": {"mouth_curve": (-0.5, 0.35), "mouth_open": (0.45, 0.3), "brow_angle": (15.0, 8.0), "eye_open": (0.5, 0.22)},
}
EXPRESSION_RANGES: dict[str, tuple[float, float]] = {
    "mouth_curve": (-1.3, 1.3),
    "mouth_open": (0.0, 1.0),
    "brow_angle": (-25.0, 35.0),
    "eye_open": (0.05, 1.0),
}
TEAR_PROBABILITY = {"happy": 0.05, "neutral": 0.05, "sad": 0.4}
EXPRESSION_PARAMETERS = (*EXPRESSION_RANGES, "tears")  # what the class changes; metadata.csv columns

METADATA_COLUMNS = (
    "file", "split", "label", "skin_tone", "grayscale", "mouth_curve", "mouth_open",
    "brow_angle", "eye_open", "tears", "rotation", "scale",
)

_HAIR_COLOURS: tuple[RGB, ...] = ((58, 40, 28), (105, 70, 40), (196, 160, 98), (26, 20, 18), (150, 78, 40), (225, 200, 140))
_IRIS_COLOURS: tuple[RGB, ...] = ((70, 45, 30), (100, 65, 40), (60, 100, 150), (90, 110, 90), (40, 30, 25))
_LASH: RGB = (45, 32, 30)
_ROSE: RGB = (240, 95, 110)
_LIP: RGB = (196, 86, 92)
_MOUTH_INSIDE: RGB = (96, 28, 38)
_TONGUE: RGB = (226, 120, 130)
_TEAR: RGB = (190, 228, 252)
_TEAR_EDGE: RGB = (105, 160, 215)
_SPLIT_STREAM = 0x5E1EC7  # entropy tag of the test-split stream (distinct from every image stream)
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9]+_\d{5,}\.jpg$")
_PAPER: RGB = (246, 238, 214)
_INK: RGB = (22, 34, 112)
_BACKDROP: RGB = (28, 128, 140)  # the studio style's plain teal backdrop
_STUDIO_CAST = (1.15, 0.97, 0.72)  # the studio style's warm (amber) colour cast, as white-balance gains


# --------------------------------------------------------------------------- parameters


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, bounds: tuple[float, float]) -> float:
    return float(np.clip(rng.normal(mean, sd), *bounds))


def _sample_expression(label: str, rng: np.random.Generator) -> dict[str, Any]:
    prior = EXPRESSION_PRIORS[label]
    expression: dict[str, Any] = {
        name: _clipped_normal(rng, *prior[name], EXPRESSION_RANGES[name]) for name in EXPRESSION_RANGES
    }
    expression["tears"] = bool(rng.random() < TEAR_PROBABILITY[label])
    return expression


def _pick(rng: np.random.Generator, options: Sequence[RGB]) -> RGB:
    return options[int(rng.integers(len(options)))]


def _jitter(colour: RGB, rng: np.random.Generator, amount: int) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore[return-value]


def _sample_appearance(rng: np.random.Generator, palette: Sequence[RGB] = SKIN_TONES) -> dict[str, Any]:
    skin_tone = int(rng.integers(len(palette)))
    return {
        "skin_tone": skin_tone,
        "skin_rgb": _jitter(palette[skin_tone], rng, 8),
        "head_aspect": float(rng.uniform(0.88, 1.0)),
        "hair_tuft": bool(rng.random() < 0.6),
        "hair_cap": bool(rng.random() < 0.4),
        "hair_rgb": _pick(rng, _HAIR_COLOURS),
        "iris_rgb": _pick(rng, _IRIS_COLOURS),
        "cloth_rgb": tuple(int(c) for c in rng.integers(40, 240, 3)),
        "cheek_strength": float(rng.uniform(0.2, 0.5)),
        "brow_darkness": float(rng.uniform(0.5, 0.85)),
        "gaze_x": float(rng.uniform(-1.0, 1.0)),
        "gaze_y": float(rng.uniform(-1.0, 1.0)),
        "mouth_width": float(rng.uniform(0.85, 1.15)),
        "tear_side": int(rng.integers(3)),  # 0 left, 1 right, 2 both
        "tear_drop": float(rng.uniform(0.12, 0.3)),
    }


def _sample_geometry(rng: np.random.Generator) -> dict[str, Any]:
    """This infant's face (face units, see ``_Frame``): where its features sit and how big they are, the shape of
    its face, ears and hairline, and a slight turn of the head. Real infants differ in all of these; without them
    every face was one template told apart by colour (which the near-duplicate guard ignores, as it must for grayscale
    copies) and expression, and faces of different classes scored as copies of one photo. Drawn after every other
    parameter, so that those of image *i* (expression, skin tone, pose) did not change when these were added."""
    return {
        "eye_x": float(rng.uniform(0.3, 0.42)),
        "eye_y": float(rng.uniform(0.02, 0.18)),
        "eye_w": float(rng.uniform(0.12, 0.18)),
        "nose_y": float(rng.uniform(0.3, 0.42)),
        "nose_w": float(rng.uniform(0.07, 0.12)),
        "mouth_y": float(rng.uniform(0.56, 0.7)),
        "cheek_y": float(rng.uniform(0.36, 0.48)),
        "ear_y": float(rng.uniform(0.0, 0.25)),
        "ear_size": float(rng.uniform(0.75, 1.25)),
        "jowl": float(rng.uniform(0.0, 0.12)),  # how much wider the lower face is than the head
        "turn": float(rng.uniform(-0.15, 0.15)),  # the head turned a little left or right: the features off centre
        "hair_line": float(rng.uniform(0.0, 30.0)),  # degrees the hair cap reaches beyond its narrowest
        "hair_shade": float(rng.uniform(0.25, 0.6)),  # share of the hair colour in the cap, over the skin
    }


def _sample_photo(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "rotation": float(rng.uniform(-20.0, 20.0)),
        "scale": float(rng.uniform(0.8, 1.12)),
        "offset_x": float(rng.uniform(-0.07, 0.07)),
        "offset_y": float(rng.uniform(-0.06, 0.06)),
        "light_strength": float(rng.uniform(0.0, 0.35)),
        "light_angle": float(rng.uniform(0.0, 2 * math.pi)),
        "brightness": float(rng.uniform(0.8, 1.15)),
        "white_balance": tuple(float(x) for x in rng.uniform(0.9, 1.1, 3)),
        "blur": float(rng.uniform(0.0, 1.1)),
        "noise": float(rng.uniform(1.0, 8.0)),
        "jpeg_quality": int(rng.integers(40, 96)),
    }


# --------------------------------------------------------------------------- colours


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(round(c * factor) for c in colour)  # type: ignore[return-value]


# --------------------------------------------------------------------------- face drawing


@dataclass(frozen=True)
class _Frame:
    """Face coordinates: origin at the head centre, unit = head radius (y points down)."""

    cx: float
    cy: float
    r: float

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.r, self.cy + y * self.r)

    def box(self, x: float, y: float, rx: float, ry: float | None = None) -> tuple[float, float, float, float]:
        ry = rx if ry is None else ry
        return (self.cx + (x - rx) * self.r, self.cy + (y - ry) * self.r, self.cx + (x + rx) * self.r, self.cy + (y + ry) * self.r)

    def width(self, k: float) -> int:
        return max(1, round(k * self.r))


# head radius as a share of the image side: tight crops like the BabyFace frames (the face fills the image)
HEAD_RADIUS = 0.4


def _draw_body(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    cloth = p["cloth_rgb"]
    d.rectangle(f.box(0, 0.95, 0.3, 0.2), fill=p["skin_rgb"])
    d.ellipse(f.box(0, 1.8, 1.4, 0.8), fill=cloth, outline=_shade(cloth, 0.7), width=f.width(0.025))


def _draw_head(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    skin, aspect = p["skin_rgb"], p["head_aspect"]
    edge = _shade(skin, 0.72)
    y, size = p["ear_y"], p["ear_size"]
    for side in (-1, 1):
        d.ellipse(f.box(side * aspect * 0.96, y, 0.15 * size, 0.2 * size), fill=skin, outline=edge, width=f.width(0.025))
        d.ellipse(f.box(side * aspect * 0.99, y, 0.07 * size, 0.11 * size), fill=_mix(skin, edge, 0.6))
    head, jowl, line = (0.0, 0.0, aspect, 1.0), (0.0, 0.35, aspect + p["jowl"], 0.62), 0.025
    for x, y, rx, ry in (head, jowl):  # the outline of their union: both filled with the edge colour, then their insides
        d.ellipse(f.box(x, y, rx, ry), fill=edge)
    for x, y, rx, ry in (head, jowl):
        d.ellipse(f.box(x, y, rx - line, ry - line), fill=skin)
    if p["hair_cap"]:
        d.chord(f.box(*head), start=212 - p["hair_line"], end=328 + p["hair_line"], fill=_mix(skin, p["hair_rgb"], p["hair_shade"]))


def _draw_hair_tuft(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    aspect, hair = p["head_aspect"], p["hair_rgb"]
    for k, angle in enumerate((-112.0, -96.0, -80.0, -66.0)):
        a = math.radians(angle)
        nx, ny = math.cos(a), math.sin(a)  # outward normal (approximately)
        bx, by = aspect * 0.93 * nx, 0.93 * ny
        curl = 1 if k % 2 == 0 else -1
        points = [(bx, by), (bx + 0.13 * nx - 0.06 * ny * curl, by + 0.13 * ny + 0.06 * nx * curl),
                  (bx + 0.2 * nx + 0.05 * ny * curl, by + 0.2 * ny - 0.05 * nx * curl)]
        d.line([f.pt(*q) for q in points], fill=hair, width=f.width(0.04), joint="curve")


def _draw_cheeks(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    skin, strength = p["skin_rgb"], p["cheek_strength"]
    x = 0.52 * p["head_aspect"]
    for side in (-1, 1):
        d.ellipse(f.box(side * x, p["cheek_y"], 0.19, 0.13), fill=_mix(skin, _ROSE, strength * 0.5))
        d.ellipse(f.box(side * x, p["cheek_y"], 0.12, 0.08), fill=_mix(skin, _ROSE, strength))


def _draw_eye(d: ImageDraw.ImageDraw, f: _Frame, x: float, p: dict) -> None:
    y, ew, openness = p["eye_y"], p["eye_w"], p["eye_open"]
    if openness < 0.25:  # closed: smiling eyes arch up, crying eyes sag
        bend = 0.07 * float(np.clip(1.5 * p["mouth_curve"], -1.0, 1.0))
        d.line([f.pt(x - ew, y), f.pt(x, y - bend), f.pt(x + ew, y)], fill=_LASH, width=f.width(0.035), joint="curve")
        return
    eh = ew * 0.95 * openness
    d.ellipse(f.box(x, y, ew, eh), fill=(248, 247, 244), outline=_LASH, width=f.width(0.02))
    ir = ew * 2 / 3
    ix, iy = x + p["gaze_x"] * (ew - ir) * 0.8, y + p["gaze_y"] * eh * 0.25
    d.ellipse(f.box(ix, iy, ir, min(ir, eh * 0.98)), fill=p["iris_rgb"])
    d.ellipse(f.box(ix, iy, ir * 0.5, min(ir * 0.5, eh * 0.6)), fill=(12, 10, 10))
    d.ellipse(f.box(ix + ir * 0.35, iy - min(ir, eh) * 0.35, 0.028), fill=(255, 255, 255))
    d.arc(f.box(x, y, ew, eh), start=195, end=345, fill=_LASH, width=f.width(0.04))


def _draw_brows(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    colour = _mix(p["skin_rgb"], _mix(p["hair_rgb"], _LASH, 0.5), p["brow_darkness"])
    lift = math.tan(math.radians(p["brow_angle"])) * 0.14
    y, eye_x = p["eye_y"] - 0.3 - 0.06 * p["eye_open"], p["eye_x"]
    for side in (-1, 1):
        inner = (side * (eye_x - 0.14), y - lift)
        outer = (side * (eye_x + 0.14), y + lift)
        middle = (side * eye_x, y - 0.035)
        d.line([f.pt(*inner), f.pt(*middle), f.pt(*outer)], fill=colour, width=f.width(0.05), joint="curve")


def _draw_nose(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    skin = p["skin_rgb"]
    y, w = p["nose_y"], p["nose_w"]
    d.ellipse(f.box(0, y, w, w * 2 / 3), fill=_mix(skin, _shade(skin, 0.7), 0.45))
    for side in (-1, 1):
        d.ellipse(f.box(side * w * 0.45, y + 0.03, 0.018, 0.012), fill=_mix(skin, (50, 25, 25), 0.6))


def _mouth_outline(p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x and the centre, upper-lip and lower-lip y of the mouth, in face units."""
    curve, opening = p["mouth_curve"], p["mouth_open"]
    half_width = 0.27 * p["mouth_width"] * (1 + 0.15 * max(curve, 0.0))
    t = np.linspace(-1.0, 1.0, 15)
    bulge = 1 - t**2
    centre = p["mouth_y"] + 0.17 * curve * (bulge - 0.5)
    upper = centre - 0.08 * opening * np.sqrt(bulge)
    lower = centre + 0.25 * opening * np.sqrt(bulge)
    return t * half_width, centre, upper, lower


def _draw_mouth(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    lip = _mix(p["skin_rgb"], _LIP, 0.65)
    xs, centre, upper, lower = _mouth_outline(p)
    if p["mouth_open"] < 0.08:
        d.line([f.pt(x, y) for x, y in zip(xs, centre)], fill=lip, width=f.width(0.05), joint="curve")
        return
    outline = [f.pt(x, y) for x, y in zip(xs, upper)] + [f.pt(x, y) for x, y in zip(xs[::-1], lower[::-1])]
    d.polygon(outline, fill=_MOUTH_INSIDE)
    depth = lower[len(xs) // 2] - upper[len(xs) // 2]
    if depth > 0.08:
        d.ellipse(f.box(0, lower[len(xs) // 2] - depth * 0.22, xs[-1] * 0.38, depth * 0.2), fill=_TONGUE)
    d.line(outline + [outline[0]], fill=lip, width=f.width(0.035), joint="curve")


def _draw_tears(d: ImageDraw.ImageDraw, f: _Frame, p: dict) -> None:
    sides = {0: (-1,), 1: (1,), 2: (-1, 1)}[p["tear_side"]]
    eye_bottom = p["eye_y"] + p["eye_w"] * 0.95 * p["eye_open"]
    for side in sides:
        x, y = side * (p["eye_x"] + 0.06), eye_bottom + p["tear_drop"] + 0.06
        d.line([f.pt(x - side * 0.04, eye_bottom), f.pt(x, y)], fill=_mix(p["skin_rgb"], _TEAR, 0.6), width=f.width(0.04))
        d.polygon([f.pt(x - 0.045, y - 0.01), f.pt(x + 0.045, y - 0.01), f.pt(x, y - 0.11)], fill=_TEAR)
        d.ellipse(f.box(x, y, 0.05), fill=_TEAR, outline=_TEAR_EDGE, width=f.width(0.015))
        d.ellipse(f.box(x - 0.015, y - 0.015, 0.014), fill=(255, 255, 255))


def _face_layer(side: int, canvas: int, p: dict) -> Image.Image:
    """The face on a transparent square of ``side`` pixels, centred, sized for a ``canvas``-pixel image."""
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    f = _Frame(side / 2, side / 2, HEAD_RADIUS * canvas * p["scale"])
    _draw_body(d, f, p)
    _draw_head(d, f, p)
    if p["hair_tuft"]:
        _draw_hair_tuft(d, f, p)
    f = _Frame(f.cx + p["turn"] * f.r, f.cy, f.r)  # the features, moved across the head as it turns
    _draw_cheeks(d, f, p)
    for side_sign in (-1, 1):
        _draw_eye(d, f, side_sign * p["eye_x"], p)
    _draw_brows(d, f, p)
    _draw_nose(d, f, p)
    _draw_mouth(d, f, p)
    if p["tears"]:
        _draw_tears(d, f, p)
    return layer


def _posed_face(canvas: int, p: dict) -> Image.Image:
    """The face rotated about its centre and shifted, as a ``canvas`` square.

    One affine resampling straight into the canvas; the face layer is larger than the
    canvas so the body is never visibly cut off at the rotated corners.
    """
    side = canvas * 3 // 2
    layer = _face_layer(side, canvas, p)
    angle = math.radians(p["rotation"])  # counter-clockwise on screen, like Image.rotate
    cos, sin = math.cos(angle), math.sin(angle)
    face_x, face_y = canvas / 2 + p["offset_x"] * canvas, canvas / 2 + p["offset_y"] * canvas
    # layer point = R(angle) @ (canvas point - face centre) + layer centre, with y pointing down
    matrix = (cos, -sin, side / 2 - cos * face_x + sin * face_y, sin, cos, side / 2 - sin * face_x - cos * face_y)
    return layer.transform((canvas, canvas), Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------- background and photo effects


def _random_colour(rng: np.random.Generator) -> RGB:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _gradient(canvas: int, angle: float) -> np.ndarray:
    """A ramp from 0 to 1 across a ``canvas`` square along direction ``angle``, shape (canvas, canvas)."""
    axis = np.linspace(-0.5, 0.5, canvas, dtype=np.float32)
    ramp = math.cos(angle) * axis[None, :] + math.sin(angle) * axis[:, None]
    return ramp / (abs(math.cos(angle)) + abs(math.sin(angle))) + 0.5


def _background(canvas: int, rng: np.random.Generator) -> Image.Image:
    start, end = (np.array(_random_colour(rng), np.float32) for _ in range(2))
    ramp = _gradient(canvas, float(rng.uniform(0, 2 * math.pi)))[..., None]
    pixels = start + (end - start) * ramp
    image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert("RGBA")
    _draw_clutter(ImageDraw.Draw(image, "RGBA"), canvas, rng)
    return image


def _draw_clutter(d: ImageDraw.ImageDraw, canvas: int, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(3, 13))):
        colour = (*_random_colour(rng), int(rng.integers(110, 256)))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * canvas
        w, h = rng.uniform(0.05, 0.6, 2) * canvas
        kind = int(rng.integers(4))
        if kind == 0:
            d.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            d.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 2:
            d.line((x0, y0, x0 + w, y0 + h), fill=colour, width=int(rng.integers(2, 12)))
        else:
            d.polygon([(x0, y0), (x0 + w, y0 + h * rng.uniform(0, 1)), (x0 + w * rng.uniform(0, 1), y0 + h)], fill=colour)


def _paper(canvas: int, rng: np.random.Generator) -> Image.Image:
    """The sketch background: plain paper, no gradient, no clutter."""
    return Image.new("RGBA", (canvas, canvas), (*_jitter(_PAPER, rng, 6), 255))


def _backdrop(canvas: int, rng: np.random.Generator) -> Image.Image:
    """The studio background: one plain teal colour, no gradient, no clutter."""
    return Image.new("RGBA", (canvas, canvas), (*_jitter(_BACKDROP, rng, 10), 255))


def _studio_effects(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    """The photo effects under a strong amber colour cast."""
    p["white_balance"] = tuple(w * c for w, c in zip(p["white_balance"], _STUDIO_CAST))
    return _photo_effects(image, p, rng)


def _sketch_effects(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    """Inked outlines over four posterised tones, printed in blue ink on cream paper (grayscale: without the tint)."""
    gray = image.convert("L")
    outlines = gray.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 64 else 0)
    inked = Image.composite(Image.new("L", gray.size, 0), ImageOps.posterize(gray, 2), outlines)
    inked = ImageOps.autocontrast(inked)
    return inked if p["grayscale"] else ImageOps.colorize(inked, _INK, _PAPER)


def _photo_effects(image: Image.Image, p: dict, rng: np.random.Generator) -> Image.Image:
    """Blur, lighting gradient, exposure, white balance, sensor noise and (optionally) grayscale."""
    size = image.width
    radius = p["blur"] * size / 128
    if radius > 0.2:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    pixels = np.asarray(image, dtype=np.float32)
    light = 1 + 2 * p["light_strength"] * (_gradient(size, p["light_angle"]) - 0.5)
    gain = light[..., None] * (p["brightness"] * np.asarray(p["white_balance"], np.float32))
    pixels = pixels * gain + rng.standard_normal(pixels.shape, dtype=np.float32) * p["noise"]
    result = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    return result.convert("L") if p["grayscale"] else result


# --------------------------------------------------------------------------- public rendering


@dataclass(frozen=True)
class _Style:
    skin_tones: tuple[RGB, ...]
    background: Callable[[int, np.random.Generator], Image.Image]  # of a canvas side
    finish: Callable[[Image.Image, dict, np.random.Generator], Image.Image]  # effects on the rendered image


_STYLES = {
    "photo": _Style(SKIN_TONES, _background, _photo_effects),
    "studio": _Style(SKIN_TONES, _backdrop, _studio_effects),
    "sketch": _Style(SKETCH_TONES, _paper, _sketch_effects),
}


def _sample_adult(rng: np.random.Generator) -> dict[str, Any]:
    """What makes a face an adult's rather than an infant's: a longer face, smaller eyes set higher, a larger nose
    and mouth lower down, full hair and no rosy cheeks. Drawn last, only for adults, so infants' faces stay the same."""
    return {
        "head_aspect": float(rng.uniform(0.72, 0.8)),
        "eye_w": float(rng.uniform(0.08, 0.1)),
        "eye_y": float(rng.uniform(-0.14, -0.04)),
        "nose_y": float(rng.uniform(0.2, 0.3)),
        "nose_w": float(rng.uniform(0.12, 0.16)),
        "mouth_y": float(rng.uniform(0.5, 0.6)),
        "cheek_strength": float(rng.uniform(0.0, 0.08)),
        "hair_cap": True,
        "hair_tuft": False,
        "hair_shade": float(rng.uniform(0.85, 1.0)),
        "hair_line": float(rng.uniform(25.0, 45.0)),
        "brow_darkness": float(rng.uniform(0.85, 1.0)),
        "jowl": float(rng.uniform(0.08, 0.16)),
    }


def render_face(
    label: str, rng: np.random.Generator, size: int = 128, grayscale: bool | None = None, style: str = "photo",
    overrides: dict[str, Any] | None = None, age: str = "infant",
) -> tuple[Image.Image, dict]:
    """Return the image and its parameters (label, skin_tone index, grayscale, mouth_curve, mouth_open, brow_angle, eye_open, tears, ...).

    ``grayscale=None`` draws it with probability ``DEFAULT_GRAYSCALE_SHARE`` (one draw from ``rng``).
    The image is "L" mode when grayscale, else "RGB"; save it as JPEG with ``params["jpeg_quality"]``.
    ``style`` is one of ``STYLES``; the face parameters are drawn the same way in every style. ``overrides`` replaces
    drawn parameters (e.g. ``{"eye_open": 0.05}`` for shut eyes) after they are drawn, so the rest stays the same.
    """
    if label not in EXPRESSION_PRIORS:
        raise BabyfaceError(f"unknown synthetic class {label!r}; use one of {', '.join(CLASSES)}")
    if style not in _STYLES:
        raise BabyfaceError(f"unknown synthetic style {style!r}; use one of {', '.join(STYLES)}")
    look = _STYLES[style]
    if grayscale is None:
        grayscale = bool(rng.random() < DEFAULT_GRAYSCALE_SHARE)
    params: dict[str, Any] = {"label": label, "grayscale": bool(grayscale)}
    params.update(_sample_expression(label, rng))
    params.update(_sample_appearance(rng, look.skin_tones))
    params.update(_sample_photo(rng))
    params.update(_sample_geometry(rng))
    if age == "adult":
        params.update(_sample_adult(rng))
    params.update(overrides or {})
    canvas = 2 * size  # render at 2x, then box-downsample: cheap antialiasing
    image = look.background(canvas, rng)
    image.alpha_composite(_posed_face(canvas, params))
    image = image.convert("RGB").reduce(2)
    return look.finish(image, params, rng), params


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _label_of(index: int, classes: Sequence[str]) -> str:
    return classes[index % len(classes)]


def _render_indexed(index: int, config: SynthConfig) -> tuple[Image.Image, dict]:
    """Image ``index`` of the dataset: depends on (seed, index, size, grayscale_share, classes, style, age), never on n."""
    rng = _image_rng(config.seed, index)
    grayscale = bool(rng.random() < config.grayscale_share)
    return render_face(_label_of(index, config.classes), rng, config.size, grayscale=grayscale, style=config.style,
                       age=config.age)


# --------------------------------------------------------------------------- dataset


def _test_indices(config: SynthConfig) -> set[int]:
    """A stratified, seeded choice of ``test_fraction`` of each class (at least one, never all)."""
    rng = np.random.default_rng(np.random.SeedSequence((config.seed, _SPLIT_STREAM)))
    chosen: set[int] = set()
    for c in range(len(config.classes)):
        members = np.arange(c, config.n, len(config.classes))
        n_test = min(max(math.floor(len(members) * config.test_fraction + 0.5), 1), len(members) - 1)
        chosen.update(int(i) for i in rng.permutation(members)[:n_test])
    return chosen


def _save_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG", quality=quality)


def _metadata_row(file: str, split: str, p: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"file": file, "split": split, "label": p["label"], "skin_tone": p["skin_tone"]}
    for name in METADATA_COLUMNS[4:]:
        value = p[name]
        row[name] = int(value) if isinstance(value, bool) else round(float(value), 4)
    return row


def _metadata_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _remove_stale_images(out: Path, keep: set[str]) -> None:
    """After --overwrite, delete images of an earlier run (our naming pattern only) that this run did not write."""
    for path in out.glob("*/*/*.jpg"):
        relative = path.relative_to(out).as_posix()
        if path.parts[-3] in ("train", "test") and _IMAGE_NAME.match(path.name) and relative not in keep:
            path.unlink()


def generate_dataset(
    out: str | Path, config: SynthConfig | None = None, overwrite: bool = False, progress: bool = True
) -> dict:
    """Write OUT/train/<class>/<class>_00012.jpg and OUT/test/<class>/..., plus OUT/metadata.csv; return a summary dict (counts per split and class, seconds, out path)."""
    config = SynthConfig() if config is None else config
    out_dir = prepare_output_dir(out, overwrite=overwrite)
    started = time.perf_counter()
    test = _test_indices(config)
    counts = {split: {c: 0 for c in config.classes} for split in ("train", "test")}
    rows: list[dict[str, Any]] = []
    for index in progress_bar(range(config.n), progress, desc="synthetic faces", unit="img"):
        image, params = _render_indexed(index, config)
        split, label = ("test" if index in test else "train"), params["label"]
        file = f"{split}/{label}/{label}_{index:05d}.jpg"
        _save_jpeg(image, out_dir / file, params["jpeg_quality"])
        counts[split][label] += 1
        rows.append(_metadata_row(file, split, params))
    _remove_stale_images(out_dir, {row["file"] for row in rows})
    write_text(out_dir / "metadata.csv", _metadata_csv(rows))
    seconds = time.perf_counter() - started
    return {
        "out": str(out_dir),
        "n": config.n,
        "counts": counts,
        "grayscale": sum(row["grayscale"] for row in rows),
        "seconds": round(seconds, 3),
        "images_per_minute": round(60 * config.n / max(seconds, 1e-9), 1),
    }


def write_moving_faces_video(path: str | Path, frames: int = 50, size: tuple[int, int] = (640, 480), fps: float = 25.0,
                             faces: int = 1, speed: float = 4.0, seed: int = 0) -> Path:
    """An MP4 (OpenCV, mp4v) of synthetic faces gliding to and fro across a plain background, ``speed`` pixels per frame:
    test and benchmark input for video."""
    import cv2

    rng = np.random.default_rng(seed)
    side = min(size) // 3
    sprites = [np.asarray(render_face(CLASSES[i % len(CLASSES)], rng, size=side, grayscale=False)[0])[:, :, ::-1] for i in range(faces)]
    travel = size[0] - side
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        for t in range(frames):
            frame = np.full((size[1], size[0], 3), (160, 120, 90), np.uint8)
            for i, sprite in enumerate(sprites):
                x = int(travel - abs(travel - (speed * t + i * side) % (2 * travel)))  # triangle wave: back and forth
                y = int((size[1] - side) * (i + 0.5) / faces)
                frame[y:y + side, x:x + side] = sprite
            writer.write(frame)
    finally:
        writer.release()
    return Path(path)


SCRIPTED_SCENES = ("open", "closed", "covered", "empty")


def write_scripted_face_video(path: str | Path, script: Sequence[tuple[str, float]], size: tuple[int, int] = (320, 240),
                              fps: float = 10.0, seed: int = 0) -> Path:
    """An MP4 of one synthetic neutral face, still in the middle of a plain background, acting out ``script``: a list
    of (scene, seconds) with scene ``open`` (eyes open), ``closed`` (eyes shut), ``covered`` (a cloth over the face
    that keeps moving, as over an infant who wriggles) or ``empty`` (the face gone, the scene still). Test input for
    watch's asleep, face_hidden and face_lost events."""
    import cv2

    side = min(size) // 2
    faces = {scene: np.asarray(render_face("neutral", np.random.default_rng(seed), size=side, grayscale=False,
                                           overrides={"eye_open": eye, "mouth_open": 0.0})[0])[:, :, ::-1]
             for scene, eye in (("open", 0.9), ("closed", 0.02))}
    x, y = (size[0] - side) // 2, (size[1] - side) // 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        frame_index = 0
        for scene, seconds in script:
            if scene not in SCRIPTED_SCENES:
                raise BabyfaceError(f"unknown scene {scene!r}; use one of {', '.join(SCRIPTED_SCENES)}")
            for _ in range(round(seconds * fps)):
                frame = np.full((size[1], size[0], 3), (160, 120, 90), np.uint8)
                if scene in faces or scene == "covered":
                    frame[y:y + side, x:x + side] = faces.get(scene, faces["open"])
                if scene == "covered":
                    _draw_cloth(frame, x, y, side, frame_index)
                writer.write(frame)
                frame_index += 1
    finally:
        writer.release()
    return Path(path)


def _draw_cloth(frame: np.ndarray, x: int, y: int, side: int, t: int) -> None:
    """A striped cloth over the face square, shifting a few pixels every frame."""
    shift = int(6 * np.sin(t / 2.0))
    top, bottom = max(0, y - side // 8 + shift), y + side + side // 8 + shift
    left, right = max(0, x - side // 8 - shift), x + side + side // 8 - shift
    cloth = frame[top:bottom, left:right]
    stripes = ((np.arange(cloth.shape[0])[:, None] + t * 3) // 6) % 2
    cloth[:] = np.where(stripes[:, :, None] == 1, (200, 210, 230), (150, 170, 210)).astype(np.uint8)
