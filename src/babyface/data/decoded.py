"""Decode every image once, resized to the model's size, into one uint8 tensor kept in memory."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ImageDecodeError
from ..progress import progress_bar
from .images import DEFAULT_MAX_PIXELS, load_resized

log = logging.getLogger("babyface")


@dataclass
class DecodedImages:
    """N decoded images: ``images`` is N×3×S×S uint8, ``labels`` N int64 (-1 when unknown)."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int]) -> "DecodedImages":
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return DecodedImages(self.images[index], self.labels[index], [self.paths[i] for i in indices])


def decode_images(
    paths: Sequence[Path],
    labels: Sequence[int] | None,
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    strict: bool = False,
    progress: bool = True,
    desc: str = "decode",
) -> DecodedImages:
    """Decode ``paths`` in threads (Pillow releases the GIL while decoding).

    An undecodable file is logged with its path and skipped, or raises ImageDecodeError when ``strict``.
    """
    labels = list(labels) if labels is not None else [-1] * len(paths)
    workers = min(8, os.cpu_count() or 1)

    def load(path: Path) -> np.ndarray | ImageDecodeError:
        try:
            return load_resized(path, size, max_pixels=max_pixels)
        except ImageDecodeError as exc:
            return exc

    arrays: list[np.ndarray] = []
    kept_paths: list[Path] = []
    kept_labels: list[int] = []
    skipped: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(load, paths)
        for path, label, result in progress_bar(zip(paths, labels, results), progress, total=len(paths), desc=desc, unit="img", leave=False):
            if isinstance(result, ImageDecodeError):
                if strict:
                    raise ImageDecodeError(f"{result} (stopped by --strict)")
                log.warning("skipped %s", result)
                skipped.append(str(result))
                continue
            arrays.append(result)
            kept_paths.append(path)
            kept_labels.append(label)
    if arrays:
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.empty((0, 3, size, size), dtype=torch.uint8)
    return DecodedImages(images, torch.tensor(kept_labels, dtype=torch.long), kept_paths, skipped)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std (on the 0..1 scale) over every pixel of a uint8 N×3×H×W tensor."""
    if images.numel() == 0:
        return [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    count = images.shape[0] * images.shape[2] * images.shape[3]
    sums = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for chunk in images.split(1024):
        values = chunk.to(torch.float64) / 255.0
        sums += values.sum(dim=(0, 2, 3))
        squares += (values * values).sum(dim=(0, 2, 3))
    mean = sums / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    return [round(v, 6) for v in mean.tolist()], [round(max(v, 1e-3), 6) for v in std.tolist()]
