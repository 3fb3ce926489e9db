"""Night frames: baby monitors switch to infrared at night and send grey, low-contrast, noisy frames.

``benchmarks/night.py`` measured what helps on infrared-like versions of the infant sets (grey, low contrast, darker,
blurred, sensor noise): the detector loses faces to the noise, and a Gaussian blur before detection gets them back
(strong noise: 66% → 98% of face crops found) at no cost by day; the classifier loses accuracy to the contrast, and a
percentile stretch of each face gets it back (+0.03 to +0.09), while CLAHE amplified the noise and cost faces. So
night mode detects on a blurred copy of the frame and classifies contrast-stretched faces; ``auto`` turns it on for
frames whose three channels are alike (what an infrared camera sends) and leaves colour frames untouched.
"""

from __future__ import annotations

import numpy as np

from babyface.data.images import luminance_of

NIGHT_MODES = ("auto", "on", "off")
DENOISE_SIGMA = 1.5  # pixels of Gaussian blur before detection
STRETCH_PERCENTILES = (1.0, 99.0)  # of the luminance, mapped to 0 and 255
GREY_TOLERANCE = 4.0  # mean absolute difference between colour channels (grey levels) under which a frame is grey
SAMPLE = 64  # frames are judged grey on a SAMPLE×SAMPLE grid of their pixels (cheap at any size)


def looks_infrared(rgb: np.ndarray) -> bool:
    """Whether an H×W×3 uint8 frame is grey, as an infrared camera's (its three channels alike)."""
    step_y, step_x = max(1, rgb.shape[0] // SAMPLE), max(1, rgb.shape[1] // SAMPLE)
    sample = rgb[::step_y, ::step_x, :3].astype(np.int16)
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(spread.mean()) / 2 <= GREY_TOLERANCE


def night_active(mode: str, rgb: np.ndarray) -> bool:
    """Whether night mode applies to this frame: ``on``, ``off``, or ``auto`` = when it looks infrared."""
    return mode == "on" or (mode == "auto" and looks_infrared(rgb))


def for_detection(rgb: np.ndarray, sigma: float = DENOISE_SIGMA) -> np.ndarray:
    """A Gaussian-blurred copy that takes the sensor noise out before the detector sees the frame."""
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def stretch_contrast(rgb: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Every channel mapped linearly so that the luminance's ``percentiles`` become 0 and 255 (clipped); an image with
    (almost) no contrast comes back as it is."""
    luminance = luminance_of(rgb)
    low, high = np.percentile(luminance, percentiles)
    if high - low < 1:
        return rgb.copy()
    return np.clip(np.rint((rgb.astype(np.float32) - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
