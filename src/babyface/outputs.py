"""Atomic file output: write to a temporary name in the same folder, then rename.

A crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from babyface.errors import BabyfaceError, OutputExistsError


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``keep_suffix`` ends the temporary name with ``path``'s own suffix, for writers that pick the format from it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if keep_suffix else ""), dir=path.parent)
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results should be readable like any other file
    except OSError as exc:
        raise _output_error(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        raise _output_error(path, exc) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _output_error(path: Path, exc: OSError) -> BabyfaceError:
    if exc.errno == errno.ENOSPC:
        return BabyfaceError(f"{path}: disk full while writing; free some space and run again")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return BabyfaceError(f"{path}: cannot write here ({exc.strerror}); choose a writable output folder")
    return BabyfaceError(f"{path}: cannot write ({exc.strerror or exc})")


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        # surrogateescape: file names that are not valid UTF-8 are written back as their original bytes
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    return write_text(path, csv_text(header, rows))


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)


def prepare_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create ``path``; refuse a non-empty folder unless ``overwrite`` (results are never silently replaced)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder; choose another --out")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(f"{path}: folder is not empty; pass --overwrite to replace its results or choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path, exc) from exc
    return path
