"""The decode cache: decoded images kept in a file, reused across runs, rebuilt only for the files that changed.

``load_decoded(paths, labels, opts, ...)`` is its one entry point: the images as ``DecodedImages`` (see ``decoded``,
which this module decodes with and never calls back here), streamable rows of the cache file, or decoded into memory
with --no-cache.

The cache folder (``--cache-dir``; default ``$BABYFACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/babyface`` or
``~/.cache/babyface``, never the dataset folder, which may be read-only) holds one *pool* per decode setting
and folder of images:

``KEY.json``        the index: format and version, settings (image size, decoder version, --max-pixels),
                    the folder, the data file's name, shape, byte count and CRC-32, and one entry per file:
                    [content hash, path, size, mtime_ns, row, why it failed] (row -1: it could not be decoded)
``KEY.ID.npy``      every decoded image, N×3×S×S uint8 in a plain ``.npy`` file, memory-mapped read-only

Images are found by the BLAKE2 hash of the file's bytes, so a renamed file still hits and an edited one misses.
A run whose files all hit writes nothing; otherwise a new data file is written holding the rows still useful
(requested now, or of files still present unchanged) plus the newly decoded images, then the index is
replaced atomically. A damaged or foreign index or data file is reported and rebuilt, never trusted: nothing
is unpickled, and shape, size and checksum are checked before use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from babyface.config import DataConfig
from babyface.data.decoded import MB, DecodedImages, MappedImages, decode_images, decode_into
from babyface.data.images import DEFAULT_MAX_PIXELS, display_path
from babyface.errors import BabyfaceError, ImageDecodeError
from babyface.outputs import atomic_path, write_json
from babyface.progress import progress_bar

log = logging.getLogger("babyface")

CACHE_FORMAT = "babyface-decode-cache"
CACHE_VERSION = 1
DECODER_VERSION = 1  # raise when load_resized's output changes, so older cached images are not reused


def default_cache_dir() -> Path:
    """``$BABYFACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/babyface``, else ``~/.cache/babyface``."""
    if os.environ.get("BABYFACE_CACHE_DIR"):
        return Path(os.environ["BABYFACE_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "babyface"


def cache_dir_for(opts: DataConfig) -> Path | None:
    """The cache folder for these options; None with --no-cache."""
    if not opts.cache:
        return None
    return Path(opts.cache_dir).expanduser() if opts.cache_dir else default_cache_dir()


def load_decoded(paths: Sequence[Path], labels: Sequence[int] | None, opts: DataConfig, progress: bool,
                 desc: str) -> DecodedImages:
    """Decoded images of ``paths`` (labels -1 when None), at --image-size: rows of the decode cache file (streamable)
    unless --no-cache, else decoded into memory; files that cannot be decoded are reported and skipped (--strict: raise)."""
    folder = cache_dir_for(opts)
    kwargs = {"max_pixels": opts.max_pixels, "strict": opts.strict, "progress": progress, "desc": desc}
    if folder is None:
        return decode_images(paths, labels, opts.image_size, **kwargs)
    return _decode_cached(paths, labels, opts.image_size, folder, **kwargs)


@dataclass(frozen=True)
class FileKey:
    digest: str
    size: int
    mtime_ns: int


def file_key(path: Path) -> FileKey | str:
    """Content hash and stat of ``path``, or why it cannot be read."""
    try:
        stat = os.stat(path)
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return FileKey(digest.hexdigest(), stat.st_size, stat.st_mtime_ns)


def file_keys(paths: Sequence[Path], progress: bool) -> list[FileKey | str]:
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
        return list(progress_bar(pool.map(file_key, paths), progress, total=len(paths), desc="hash", unit="file", leave=False))


@dataclass(frozen=True)
class Entry:
    digest: str
    path: str
    size: int
    mtime_ns: int
    row: int  # -1: could not be decoded
    error: str = ""

    def unchanged(self) -> bool:
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)


@dataclass
class Pool:
    array: np.ndarray  # N×3×S×S uint8, memory-mapped
    entries: list[Entry]

    def by_digest(self) -> dict[str, Entry]:
        return {entry.digest: entry for entry in self.entries}


class CacheDamaged(Exception):
    pass


class DecodeCache:
    """One pool of the cache folder: the images of one folder decoded with one setting."""

    def __init__(self, folder: Path, size: int, max_pixels: int, paths: Sequence[Path]) -> None:
        self.folder = Path(folder)
        self.size = size
        self.settings = {"image_size": size, "decoder": DECODER_VERSION, "max_pixels": max_pixels}
        self.root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
        self.key = hashlib.blake2b(json.dumps([self.settings, self.root]).encode("utf-8", "surrogateescape"),
                                   digest_size=10).hexdigest()
        self.index_path = self.folder / f"{self.key}.json"

    def empty(self) -> Pool:
        return Pool(np.empty((0, 3, self.size, self.size), np.uint8), [])

    def load(self) -> Pool:
        """The pool on disk; empty when there is none, or when it is damaged (with a warning)."""
        if not self.index_path.exists():
            return self.empty()
        try:
            return self._read()
        except (CacheDamaged, OSError, ValueError, KeyError, TypeError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            log.warning("decode cache %s is damaged (%s); ignoring it and decoding again", self.index_path, reason)
            return self.empty()

    def _read(self) -> Pool:
        index = json.loads(self.index_path.read_text(encoding="utf-8"))
        expected = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "settings": self.settings, "root": self.root}
        for name, value in expected.items():
            if index.get(name) != value:
                raise CacheDamaged(f"{name} is {index.get(name)!r}, expected {value!r}")
        if not re.fullmatch(rf"{self.key}\.[0-9a-f]{{12}}\.npy", str(index["data"])):
            raise CacheDamaged(f"unexpected data file name {index['data']!r}")
        data = self.folder / index["data"]
        if data.stat().st_size != index["bytes"] or file_crc(data) != index["crc32"]:
            raise CacheDamaged(f"{data.name} does not match its checksum")
        array = open_array(data)
        if array.dtype != np.uint8 or list(array.shape) != index["shape"] or array.shape[1:] != (3, self.size, self.size):
            raise CacheDamaged(f"{data.name} holds {array.dtype} {array.shape}, expected uint8 {index['shape']}")
        entries = [Entry(*entry) for entry in index["entries"]]
        if not all(isinstance(e.row, int) and -1 <= e.row < len(array) and re.fullmatch("[0-9a-f]{32}", e.digest) for e in entries):
            raise CacheDamaged("an entry points outside the data file")
        return Pool(array, entries)

    def rebuild(self, pool: Pool, paths: Sequence[Path], keys: Sequence[FileKey | str], *, max_pixels: int, strict: bool,
                progress: bool, desc: str) -> Pool:
        """A new pool: the old rows still useful plus ``paths`` not yet in it, decoded; written atomically."""
        wanted = {key.digest for key in keys if isinstance(key, FileKey)}
        known = pool.by_digest()
        kept = [e for e in pool.entries if e.digest in wanted or e.unchanged()]
        old_rows = sorted({e.row for e in kept if e.row >= 0})
        new: dict[str, int] = {}  # digest → index of the first path with that content
        for i, key in enumerate(keys):
            if isinstance(key, FileKey) and key.digest not in known:
                new.setdefault(key.digest, i)
        name = f"{self.key}.{uuid.uuid4().hex[:12]}.npy"
        with atomic_path(self.folder / name, keep_suffix=True) as tmp:
            shape = (len(old_rows) + len(new), 3, self.size, self.size)
            decoded, failed = self._write_rows(tmp, shape, pool.array, old_rows, [paths[i] for i in new.values()],
                                               max_pixels=max_pixels, strict=strict, progress=progress, desc=desc)
            crc, size = file_crc(tmp), tmp.stat().st_size
        renumber = {old: row for row, old in enumerate(old_rows)}
        outcome = {e.digest: (renumber.get(e.row, -1), e.error) for e in kept}
        new_digests = list(new)
        outcome.update({new_digests[j]: (len(old_rows) + j, "") for j in decoded})
        for j, error in zip(sorted(set(range(len(new))) - set(decoded)), failed):
            outcome[new_digests[j]] = (-1, _reason(error, paths[new[new_digests[j]]]))
        entries = {(e.digest, e.path): replace(e, row=outcome[e.digest][0]) for e in kept}
        for path, key in zip(paths, keys):
            if isinstance(key, FileKey):
                entry = Entry(key.digest, os.fsdecode(path), key.size, key.mtime_ns, *outcome[key.digest])
                entries[(entry.digest, entry.path)] = entry
        write_json(self.index_path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "settings": self.settings, "root": self.root,
                                     "data": name, "shape": list(shape), "bytes": size, "crc32": crc,
                                     "entries": [list(astuple(e)) for e in entries.values()]})
        self._remove_stale(keep=name)
        return Pool(open_array(self.folder / name), list(entries.values()))

    def _write_rows(self, path: Path, shape: tuple[int, ...], old: np.ndarray, old_rows: list[int], new_paths: list[Path],
                    **decode_options) -> tuple[list[int], list[ImageDecodeError]]:
        """Write the kept ``old_rows`` of ``old`` then ``new_paths`` decoded into a new .npy at ``path``."""
        out = create_array(path, shape)
        for start in range(0, len(old_rows), 4096):
            chunk = old_rows[start:start + 4096]
            out[start:start + len(chunk)] = old[chunk]
        decoded, failed = decode_into(out[len(old_rows):], new_paths, self.size, **decode_options)
        if isinstance(out, np.memmap):
            out.flush()
        return decoded, failed

    def _remove_stale(self, keep: str) -> None:
        for path in self.folder.glob(f"{self.key}.*.npy"):
            if path.name != keep:
                path.unlink(missing_ok=True)


def _decode_cached(paths: Sequence[Path], labels: Sequence[int] | None, size: int, folder: Path, *,
                   max_pixels: int = DEFAULT_MAX_PIXELS, strict: bool = False, progress: bool = True,
                   desc: str = "decode") -> DecodedImages:
    """``decode_images`` through the cache in ``folder``: images come back as ``MappedImages`` rows of the cache file.

    When the cache cannot be written (read-only folder, full disk) the images are decoded into memory, with a warning.
    """
    if not paths:
        return decode_images(paths, labels, size, progress=False)
    labels = list(labels) if labels is not None else [-1] * len(paths)
    cache = DecodeCache(folder, size, max_pixels, paths)
    keys = file_keys(paths, progress)
    pool = cache.load()
    known = pool.by_digest()
    if any(isinstance(key, FileKey) and key.digest not in known for key in keys):
        try:
            pool = cache.rebuild(pool, paths, keys, max_pixels=max_pixels, strict=strict, progress=progress, desc=desc)
        except ImageDecodeError:
            raise
        except (BabyfaceError, OSError) as exc:
            log.warning("cannot write the decode cache in %s (%s); decoding into memory instead (--cache-dir elsewhere, "
                        "or --no-cache)", folder, str(exc).splitlines()[0])
            return decode_images(paths, labels, size, max_pixels=max_pixels, strict=strict, progress=progress, desc=desc)
    return _select_rows(pool, paths, labels, keys, strict)


def _select_rows(pool: Pool, paths: Sequence[Path], labels: Sequence[int], keys: Sequence[FileKey | str], strict: bool) -> DecodedImages:
    """The pool rows of ``paths``, in order; files that could not be read or decoded are reported and skipped."""
    known = pool.by_digest()
    rows, kept, skipped = [], [], []
    for i, (path, key) in enumerate(zip(paths, keys)):
        if isinstance(key, str):
            problem = f"{display_path(path)}: cannot read file ({key}); fix or remove it"
        elif known[key.digest].row < 0:
            problem = f"{display_path(path)}: {known[key.digest].error}"
        else:
            rows.append(known[key.digest].row)
            kept.append(i)
            continue
        if strict:
            raise ImageDecodeError(f"{problem} (stopped by --strict)")
        log.warning("skipped %s", problem)
        skipped.append(problem)
    return DecodedImages(MappedImages(pool.array, np.array(rows, dtype=np.int64)),
                         torch.tensor([labels[i] for i in kept], dtype=torch.long), [paths[i] for i in kept], skipped)


def _reason(error: ImageDecodeError, path: Path) -> str:
    """The message without its leading path, so that it can be reported under the file's current name."""
    return str(error).removeprefix(f"{display_path(path)}: ")


def create_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A writable uint8 .npy of ``shape`` on disk (memory-mapped; an empty one is written directly)."""
    if shape[0] == 0:
        np.save(path, np.empty(shape, np.uint8))
        return np.empty(shape, np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def open_array(path: Path) -> np.ndarray:
    """A .npy file memory-mapped read-only (pickled objects refused)."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.asarray(array) if array.size == 0 else array


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(16 * MB):
            crc = zlib.crc32(chunk, crc)
    return crc
