"""Near-duplicate detection that survives resizing, re-encoding, grayscale, brightness, flips and small rotations.

Each image becomes a blurred grayscale *polar signature*: ``RINGS`` circles around the centre sampled at
``ANGLES`` angles, normalised to zero mean and unit norm. Rotating the image shifts the signature
circularly along the angle axis and a horizontal flip reverses it, so the best normalised
cross-correlation over shifts of up to ``MAX_ROTATION`` degrees, with and without the reversal, scores two
copies of one photo (≈1) against two different photos. Both come from one FFT per signature.

Comparing every pair that way is quadratic, so candidates come first from a nearest-neighbour search on
the FFT *magnitudes* of the signature, which ignore rotation and flips altogether (their dot product
bounds the correlation from above); only those candidates are scored exactly.

Crops move the centre and change the scale, which the signature does not survive beyond ~2% per side.
So each image also gets the keys of two fixed inner *windows* (``CROP_WINDOWS``: centred 5% and 10% crops),
searched like the whole-frame keys: an image whose whole-frame key is near a window key of another becomes a
crop candidate, and the signature of that very window (no refinement of its sides, which fitted different
infants as well as copies) must reach the stricter ``CROP_THRESHOLD``.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from babyface.config import DEFAULT_THRESHOLD
from babyface.data.images import DEFAULT_MAX_PIXELS, ImageHeader, display_path, load_resized_with_header, luminance_of
from babyface.errors import ImageDecodeError
from babyface.progress import progress_bar

SIZE = 64  # images are squashed to SIZE×SIZE grayscale first
BLUR_SIGMA = 1.5  # pixels at SIZE: hides noise, JPEG artefacts and sub-pixel misalignment
BACKGROUND_SIGMA = 4.0  # shading removed (difference of Gaussians): faces share it, so it says little
RINGS = 12
ANGLES = 144  # 2.5° per step
MAX_RADIUS = 0.42  # of the side: inside the circle that any rotation of the square keeps
MAX_ROTATION = 20.0  # degrees searched either way (copies are rotated by up to ±15°)
KEY_HARMONICS = 10  # angular harmonics kept per ring for the candidate search
DEFAULT_NEIGHBOURS = 12
GRAY_TOLERANCE = 6  # max channel spread (0..255) of an image that counts as grayscale after JPEG
KEY_SLACK = 0.1  # truncated keys only approximate the bound; copies of one photo score ≥ 0.80 on them
FULL_FRAME = (0.0, 0.0, 0.0, 0.0)  # windows are (left, right, top, bottom) shares of the side cut away
CROP_WINDOWS = ((0.05,) * 4, (0.1,) * 4)  # corner windows found ≤ 25% of 10% corner crops for 3× the search
WINDOW_HARMONICS = 5  # harmonics per ring in window keys (half-size keys: the window search costs the whole-frame one)
CROP_KEY_BOUND = 0.92  # whole-frame vs window key similarity of every crop that passed CROP_THRESHOLD (infant-web, rotated): ≥ 0.923
CROP_THRESHOLD = 0.94  # on infant-web no pair across identity groups reaches it through a window (README)


@dataclass
class Signatures:
    """``polar``: N×RINGS×ANGLES float16 normalised polar signatures; ``keys``: N×K float32 unit vectors;
    ``window_keys``: N×len(CROP_WINDOWS)×K' float16 unit vectors; ``thumbs``: N×SIZE×SIZE uint8 grayscale."""

    polar: np.ndarray
    keys: np.ndarray
    window_keys: np.ndarray
    thumbs: np.ndarray

    def __len__(self) -> int:
        return len(self.polar)

    def subset(self, indices: Sequence[int]) -> "Signatures":
        index = np.asarray(indices, dtype=np.int64)
        return Signatures(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence["Signatures"]) -> "Signatures":
        parts = [p for p in parts if len(p)] or list(parts[:1])
        return Signatures(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Signatures)))


@dataclass(frozen=True)
class Pair:
    """Two images judged copies of one photo; ``score`` is their best correlation (1.0 for identical bytes)."""

    first: int
    second: int
    score: float
    kind: str  # "exact" (same file content) or "near"


def _polar_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    radii = np.linspace(0.03, MAX_RADIUS, RINGS) * SIZE
    angles = np.arange(ANGLES) * (2 * np.pi / ANGLES)
    centre = (SIZE - 1) / 2
    x = centre + radii[:, None] * np.cos(angles)[None, :]
    y = centre - radii[:, None] * np.sin(angles)[None, :]
    weights = np.sqrt(radii / radii.max())[:, None]  # each ring counts by the area it stands for
    return x, y, np.broadcast_to(weights, x.shape)


_GRID_X, _GRID_Y, _RING_WEIGHTS = _polar_grid()


def to_gray(images: np.ndarray) -> np.ndarray:
    """N×H×W×3 (or N×H×W, or N×3×H×W) uint8 → N×SIZE×SIZE float32 grayscale, squashed as training does."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    gray = luminance_of(images) if images.ndim == 4 else images.astype(np.float32)
    if gray.shape[1:] != (SIZE, SIZE):
        gray = _resize_batch(gray)
    return gray


def _resize_batch(gray: np.ndarray) -> np.ndarray:
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(gray))[:, None]
    return torch.nn.functional.interpolate(tensor, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)[:, 0].numpy()


def signatures(images: np.ndarray) -> Signatures:
    """Signatures of a batch of images (see ``to_gray`` for the accepted shapes)."""
    if len(images) == 0:
        return Signatures(np.zeros((0, RINGS, ANGLES), np.float16), np.zeros((0, RINGS * KEY_HARMONICS), np.float32),
                          np.zeros((0, len(CROP_WINDOWS), RINGS * WINDOW_HARMONICS), np.float16),
                          np.zeros((0, SIZE, SIZE), np.uint8))
    gray = to_gray(images)
    banded = _band_pass(gray)
    polar = _window_polar(banded, np.broadcast_to(FULL_FRAME, (len(gray), 4)))
    window_keys = [_rotation_free_keys(_window_polar(banded, np.broadcast_to(w, (len(gray), 4))), WINDOW_HARMONICS)
                   for w in CROP_WINDOWS]
    return Signatures(polar.astype(np.float16), _rotation_free_keys(polar), np.stack(window_keys, axis=1).astype(np.float16),
                      np.clip(np.rint(gray), 0, 255).astype(np.uint8))


def _band_pass(gray: np.ndarray) -> np.ndarray:
    return gaussian_filter(gray, sigma=(0, BLUR_SIGMA, BLUR_SIGMA), mode="nearest") - gaussian_filter(
        gray, sigma=(0, BACKGROUND_SIGMA, BACKGROUND_SIGMA), mode="nearest")


def _window_polar(banded: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Normalised polar signature of each image's window (row i of N×4 ``windows``: left, right, top, bottom)."""
    left, right, top, bottom = (np.asarray(windows, np.float32)[:, i, None, None] for i in range(4))
    last = SIZE - 1
    x = np.clip(left * last + _GRID_X * (1 - left - right), 0, last - 1e-3)
    y = np.clip(top * last + _GRID_Y * (1 - top - bottom), 0, last - 1e-3)
    polar = _sample_bilinear(banded, x, y) * _RING_WEIGHTS
    polar -= polar.mean(axis=(1, 2), keepdims=True)
    polar /= np.maximum(np.sqrt((polar * polar).sum(axis=(1, 2), keepdims=True)), 1e-6)
    return polar


def _sample_bilinear(gray: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of each image at N×R×A (or shared R×A) coordinates."""
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    n = np.arange(len(gray))[:, None, None]
    top = gray[n, y0, x0] * (1 - fx) + gray[n, y0, x0 + 1] * fx
    bottom = gray[n, y0 + 1, x0] * (1 - fx) + gray[n, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _rotation_free_keys(polar: np.ndarray, harmonics: int = KEY_HARMONICS) -> np.ndarray:
    magnitude = np.abs(np.fft.rfft(polar, axis=2))[:, :, :KEY_HARMONICS]
    magnitude[:, :, 1:] *= np.sqrt(2)  # a real signal's energy at ±k: keeps the dot product a correlation bound
    return _unit(magnitude[:, :, :harmonics].reshape(len(polar), -1).astype(np.float32))


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def _shift_window() -> np.ndarray:
    steps = int(round(MAX_ROTATION / (360 / ANGLES)))
    return np.r_[0 : steps + 1, ANGLES - steps : ANGLES]


_SHIFTS = _shift_window()
_FLIP_SIGN = (-1.0) ** np.arange(ANGLES // 2 + 1)


def pair_scores(a: np.ndarray, b: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Best correlation of polar signatures ``a[i]`` and ``b[i]`` over rotations of ±MAX_ROTATION, with and without a flip
    (``chunk`` pairs at a time: each takes ~14 KB of spectra)."""
    scores = np.empty(len(a), np.float32)
    for start in range(0, len(a), chunk):
        fa = np.fft.rfft(a[start : start + chunk].astype(np.float32), axis=2)
        fb = np.fft.rfft(b[start : start + chunk].astype(np.float32), axis=2)
        straight = np.fft.irfft((fa * np.conj(fb)).sum(axis=1), n=ANGLES, axis=1)[:, _SHIFTS]
        # a horizontal flip maps angle θ to π-θ: in frequency, conj(F) times (-1)^k
        flipped = np.fft.irfft((fa * fb * _FLIP_SIGN).sum(axis=1), n=ANGLES, axis=1)
        scores[start : start + chunk] = np.maximum(straight.max(axis=1), flipped.max(axis=1))
    return scores


def _nearest(query: np.ndarray, index: np.ndarray, k: int, bound: float, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(query row, index row) of the ``k`` most similar unit vectors of each query row, if at least ``bound``."""
    import torch

    k = min(k, len(index))
    if len(query) == 0 or k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    table = torch.from_numpy(np.ascontiguousarray(index, np.float32))
    rows, cols = [], []
    for start in range(0, len(query), chunk):
        block = torch.from_numpy(np.ascontiguousarray(query[start : start + chunk], np.float32))
        similarity, found = (block @ table.T).topk(k, dim=1)
        keep = (similarity >= bound).numpy()
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(found.numpy()[keep])
    return np.concatenate(rows), np.concatenate(cols)


def candidate_pairs(query: Signatures, index: Signatures, neighbours: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """(query row, index row) of each index image among the ``neighbours`` nearest keys of a query image
    whose key similarity is at least ``bound``."""
    return _nearest(query.keys, index.keys, neighbours, bound)


def near_pairs(sigs: Signatures, threshold: float = DEFAULT_THRESHOLD, neighbours: int = DEFAULT_NEIGHBOURS) -> list[Pair]:
    """Pairs (i < j) within one set whose whole frames reach ``threshold``, or one of whose crop windows reaches
    ``max(threshold, CROP_THRESHOLD)`` against the other's whole frame."""
    rows, cols = candidate_pairs(sigs, sigs, neighbours + 1, threshold - KEY_SLACK)
    whole = _scored(sigs, sigs, *_unique_pairs(rows, cols), threshold)
    cropped = [Pair(min(p.first, p.second), max(p.first, p.second), p.score, p.kind)
               for p in crop_pairs(sigs, sigs, _crop_threshold(threshold), neighbours) if p.first != p.second]
    return _merged(whole, cropped)


def _unique_pairs(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.minimum(rows, cols), np.maximum(rows, cols)
    unique = np.unique(np.stack([first, second], axis=1)[first != second], axis=0).reshape(-1, 2)
    return unique[:, 0], unique[:, 1]


def _merged(*groups: list[Pair]) -> list[Pair]:
    """One pair per (first, second), the best score kept, in order."""
    best: dict[tuple[int, int], Pair] = {}
    for pair in (p for group in groups for p in group):
        if (pair.first, pair.second) not in best or pair.score > best[pair.first, pair.second].score:
            best[pair.first, pair.second] = pair
    return [best[key] for key in sorted(best)]


def cross_pairs(query: Signatures, index: Signatures, threshold: float = DEFAULT_THRESHOLD,
                neighbours: int = DEFAULT_NEIGHBOURS) -> list[Pair]:
    """Pairs (query row, index row) between two sets, found as ``near_pairs`` finds them (either may be the crop)."""
    rows, cols = candidate_pairs(query, index, neighbours, threshold - KEY_SLACK)
    crop = _crop_threshold(threshold)
    reverse = [Pair(p.second, p.first, p.score, p.kind) for p in crop_pairs(index, query, crop, neighbours)]
    return _merged(_scored(query, index, rows, cols, threshold), crop_pairs(query, index, crop, neighbours), reverse)


def _crop_threshold(threshold: float) -> float:
    """Pairs found only through a crop window must score higher: a window is an extra chance for a chance match."""
    return max(threshold, CROP_THRESHOLD)


def crop_pairs(query: Signatures, index: Signatures, threshold: float = CROP_THRESHOLD,
               neighbours: int = DEFAULT_NEIGHBOURS) -> list[Pair]:
    """Pairs (query row, index row) where the query image is a crop of the index image: its whole-frame key is
    near one of the index image's window keys, and that window's signature scores ``threshold`` against it."""
    if len(query) == 0 or len(index) == 0:
        return []
    windows = len(CROP_WINDOWS)
    query_keys = _unit(query.keys.reshape(len(query), RINGS, KEY_HARMONICS)[:, :, :WINDOW_HARMONICS].reshape(len(query), -1))
    rows, found = _nearest(query_keys, index.window_keys.reshape(len(index) * windows, -1), neighbours, CROP_KEY_BOUND)
    cols, window = found // windows, np.asarray(CROP_WINDOWS, np.float32)[found % windows]
    scores = np.concatenate([window_scores(index.thumbs, cols[part], window[part], query.polar[rows[part]])
                             for part in _chunks(len(rows), 4096)] or [np.zeros(0, np.float32)])
    keep = scores >= threshold
    return [Pair(int(i), int(j), round(float(s), 4), "near") for i, j, s in zip(rows[keep], cols[keep], scores[keep])]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, n, size)]


def window_scores(thumbs: np.ndarray, rows: np.ndarray, windows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Best correlation of the window ``windows[i]`` of thumbnail ``thumbs[rows[i]]`` with polar signature ``targets[i]``
    (each thumbnail is band-passed once however many windows of it are scored)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    banded = _band_pass(thumbs[unique].astype(np.float32))
    return pair_scores(_window_polar(banded[inverse], windows), targets)


def _scored(a: Signatures, b: Signatures, rows: np.ndarray, cols: np.ndarray, threshold: float) -> list[Pair]:
    if len(rows) == 0:
        return []
    scores = pair_scores(a.polar[rows], b.polar[cols])
    keep = scores >= threshold
    return [Pair(int(i), int(j), round(float(s), 4), "near") for i, j, s in zip(rows[keep], cols[keep], scores[keep])]


def exact_pairs(digests: Sequence[str]) -> list[Pair]:
    """Pairs of files with identical content: each member of a set of equal digests paired with the first."""
    first_seen: dict[str, int] = {}
    pairs = []
    for index, digest in enumerate(digests):
        if digest in first_seen:
            pairs.append(Pair(first_seen[digest], index, 1.0, "exact"))
        else:
            first_seen[digest] = index
    return pairs


def clusters(n: int, pairs: Iterable[Pair]) -> list[list[int]]:
    """Connected components (union-find) of size ≥ 2, largest first, members sorted."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        a, b = root(pair.first), root(pair.second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


@dataclass
class DescribedFiles:
    """Signatures of the files that decoded (``kept`` indexes into the input list), plus what each file is."""

    signatures: Signatures
    kept: list[int]
    headers: list[ImageHeader]
    grayscale: list[bool]
    digests: list[str]
    errors: list[str]


def describe_files(paths: Sequence[Path], *, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True,
                   desc: str = "describe", batch: int = 2048) -> DescribedFiles:
    """Decode (threads), hash and describe ``paths``; undecodable files are listed in ``errors``, never raised."""
    workers = min(8, os.cpu_count() or 1)
    result = DescribedFiles(signatures(np.zeros((0, SIZE, SIZE), np.uint8)), [], [], [], [], [])
    parts, pending = [result.signatures], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = pool.map(lambda p: _load_for_signature(p, max_pixels), paths)
        for index, item in enumerate(progress_bar(loaded, progress, total=len(paths), desc=desc, unit="img", leave=False)):
            if isinstance(item, ImageDecodeError):
                result.errors.append(str(item))
                continue
            pixels, header, digest = item
            pending.append(pixels)
            result.kept.append(index)
            result.headers.append(header)
            result.grayscale.append(bool(np.ptp(pixels.astype(np.int16), axis=2).max() <= GRAY_TOLERANCE))
            result.digests.append(digest)
            if len(pending) == batch:
                parts.append(signatures(np.stack(pending)))
                pending = []
    if pending:
        parts.append(signatures(np.stack(pending)))
    result.signatures = Signatures.concat(parts)
    return result


def _load_for_signature(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageHeader, str] | ImageDecodeError:
    try:
        pixels, header = load_resized_with_header(path, SIZE, max_pixels=max_pixels)
        digest = hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
        return pixels, header, digest
    except ImageDecodeError as exc:
        return exc
    except OSError as exc:
        return ImageDecodeError(f"{display_path(path)}: cannot read file ({exc.strerror}); check its permissions")


def duplicate_clusters(described: DescribedFiles, threshold: float = DEFAULT_THRESHOLD) -> tuple[list[Pair], list[list[int]]]:
    """Exact (same bytes) and near-duplicate pairs among the described files, and their clusters (rows of ``kept``)."""
    exact = exact_pairs(described.digests)
    exact_keys = {(p.first, p.second) for p in exact}
    pairs = exact + [p for p in near_pairs(described.signatures, threshold) if (p.first, p.second) not in exact_keys]
    return pairs, clusters(len(described.kept), pairs)


def cluster_ids(n: int, grouped: Sequence[list[int]], prefix: str = "dup") -> list[str]:
    """A group name per row: its cluster's (``dup0``, ``dup1``…) or its own (``single<row>``)."""
    names = [f"single{i}" for i in range(n)]
    for number, members in enumerate(grouped):
        for member in members:
            names[member] = f"{prefix}{number}"
    return names
