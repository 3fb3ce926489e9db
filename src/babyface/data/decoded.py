"""Decode every image once, resized to the model's size, into one uint8 tensor kept in memory
(or streamed from the decode cache file when it is larger than the memory budget: see ``fit_memory_budget``).

The images as values (``DecodedImages``, ``MappedImages``) and plain decoding; the decode cache (``cache``) is built on
them and this module never calls it."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from babyface.data.images import DEFAULT_MAX_PIXELS, LUMA, load_resized
from babyface.errors import ImageDecodeError
from babyface.progress import progress_bar

log = logging.getLogger("babyface")

MB = 2**20


def luminance(images: torch.Tensor) -> torch.Tensor:
    """N×3×H×W → N×1×H×W weighted by ``LUMA``, in the input's dtype and device (no weight tensor to allocate or move)."""
    return sum(weight * images[:, channel:channel + 1] for channel, weight in enumerate(LUMA))


class MappedImages:
    """Rows of a read-only, memory-mapped N×3×S×S uint8 array (the decode cache file), read on demand.

    Offers the part of ``torch.Tensor``'s interface that training and validation use (``len``, ``shape``,
    ``numel``, indexing with index tensors, ``split``), so a dataset larger than the memory budget can be
    streamed batch by batch instead of held in memory.
    """

    dtype = torch.uint8

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array = array
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.array.shape[1:]))

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, index) -> torch.Tensor:
        """A copy in memory of the selected images (one index, a slice, or an index tensor/array)."""
        index = index.numpy() if isinstance(index, torch.Tensor) else index
        return torch.from_numpy(np.array(self.array[self.rows[index]]))

    def take(self, indices) -> MappedImages:
        return MappedImages(self.array, self.rows[np.asarray(indices, dtype=np.int64)])

    def split(self, size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), size):
            yield self[start:start + size]

    def load(self) -> torch.Tensor:
        """Every selected image, read into one in-memory tensor (no more than its own bytes)."""
        out = torch.empty(tuple(self.shape), dtype=torch.uint8)
        target = out.numpy()
        for start in range(0, len(self), 4096):  # straight into the tensor: no temporary copies
            rows = self.rows[start:start + 4096]
            np.take(self.array, rows, axis=0, out=target[start:start + len(rows)])
        return out


@dataclass
class DecodedImages:
    """N decoded images: ``images`` is N×3×S×S uint8 (a tensor, or ``MappedImages`` streamed from the
    decode cache file), ``labels`` N int64 (-1 when unknown)."""

    images: torch.Tensor | MappedImages
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    def subset(self, indices: Sequence[int]) -> DecodedImages:
        indices = list(indices)
        if isinstance(self.images, MappedImages):
            images = self.images.take(indices)
        else:
            images = self.images[torch.as_tensor(indices, dtype=torch.long)]
        return DecodedImages(images, self.labels[torch.as_tensor(indices, dtype=torch.long)], [self.paths[i] for i in indices])

    def in_memory(self) -> DecodedImages:
        """The same images held in memory (streamed ones are read in once)."""
        if isinstance(self.images, MappedImages):
            return dataclasses.replace(self, images=self.images.load())
        return self


def fit_memory_budget(parts: Sequence[DecodedImages], cache_mem: float) -> list[DecodedImages]:
    """Hold ``parts`` in memory when together they fit in ``cache_mem`` MB; else leave them streaming from the cache."""
    need = sum(part.nbytes for part in parts)
    if need <= cache_mem * MB:
        return [part.in_memory() for part in parts]
    if all(isinstance(part.images, MappedImages) for part in parts):
        log.info("decoded images take %.1f MB, over --cache-mem %g MB: batches are read from the cache file", need / MB, cache_mem)
    else:
        log.warning("decoded images take %.1f MB, over --cache-mem %g MB, but without the cache file they stay in memory; "
                    "drop --no-cache to stream them", need / MB, cache_mem)
    return list(parts)


def decode_images(
    paths: Sequence[Path],
    labels: Sequence[int] | None,
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    strict: bool = False,
    progress: bool = True,
    desc: str = "decode",
    loader: Callable[[Path], np.ndarray] | None = None,
) -> DecodedImages:
    """Decode ``paths`` into one in-memory uint8 tensor (its own bytes plus any skipped files' rows, no more).

    An undecodable file is logged with its path and skipped, or raises ImageDecodeError when ``strict``.
    ``loader`` (path → size×size×3 uint8) replaces plain decoding and resizing, e.g. to cut out a face first.
    """
    labels = list(labels) if labels is not None else [-1] * len(paths)
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    kept, skipped = decode_into(out, paths, size, max_pixels=max_pixels, strict=strict, progress=progress, desc=desc, loader=loader)
    for error in skipped:
        log.warning("skipped %s", error)
    for position, i in enumerate(kept):  # close the gaps of skipped files in place
        if position != i:
            out[position] = out[i]
    images = torch.from_numpy(out[:len(kept)])
    return DecodedImages(images, torch.tensor([labels[i] for i in kept], dtype=torch.long), [paths[i] for i in kept],
                         [str(error) for error in skipped])


def decode_into(
    out: np.ndarray,
    paths: Sequence[Path],
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    strict: bool = False,
    progress: bool = True,
    desc: str = "decode",
    loader: Callable[[Path], np.ndarray] | None = None,
) -> tuple[list[int], list[ImageDecodeError]]:
    """Decode ``paths[i]`` into ``out[i]`` (3×S×S, channels first) in threads (Pillow releases the GIL).

    Returns the indices decoded and the errors of the files skipped (for the caller to report);
    with ``strict`` the first undecodable file raises ImageDecodeError instead.
    """
    workers = min(8, os.cpu_count() or 1)

    def load(path: Path) -> np.ndarray | ImageDecodeError:
        try:
            return loader(path) if loader else load_resized(path, size, max_pixels=max_pixels)
        except ImageDecodeError as exc:
            return exc

    kept: list[int] = []
    skipped: list[ImageDecodeError] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(load, paths)
        for i, result in enumerate(progress_bar(results, progress, total=len(paths), desc=desc, unit="img", leave=False)):
            if isinstance(result, ImageDecodeError):
                if strict:
                    raise ImageDecodeError(f"{result} (stopped by --strict)")
                skipped.append(result)
                continue
            out[i] = result.transpose(2, 0, 1)
            kept.append(i)
    return kept, skipped


def channel_stats(images: torch.Tensor, gray: bool = False) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std (on the 0..1 scale) over every pixel of a uint8 N×3×H×W tensor; ``gray``: those
    of the luminance, the same for every channel, so a gray model's normalised input is still a luminance."""
    if images.numel() == 0:
        return [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    count = images.shape[0] * images.shape[2] * images.shape[3]
    sums = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for chunk in images.split(1024):
        values = chunk.to(torch.float64) / 255.0
        if gray:
            values = luminance(values).expand_as(values)
        sums += values.sum(dim=(0, 2, 3))
        squares += (values * values).sum(dim=(0, 2, 3))
    mean = sums / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    return [round(v, 6) for v in mean.tolist()], [round(max(v, 1e-3), 6) for v in std.tolist()]
