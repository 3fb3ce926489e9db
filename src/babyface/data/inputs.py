"""The files a command is given: files as named, and the wanted files inside folders (recursively, sorted)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from babyface.data.images import display_path
from babyface.errors import DataError


def expand_inputs(inputs: Sequence[str | os.PathLike], wanted: Callable[[Path], bool], kind: str) -> list[Path]:
    """Files given (whatever their kind: the caller's reader judges them), and the ``wanted`` files in folders given;
    a missing input, or nothing found, is an error naming ``kind`` (e.g. "image files")."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.is_file() and wanted(p)))
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{display_path(path)}: no such file or folder; check the path")
    if not paths:
        raise DataError(f"no {kind} found in {', '.join(display_path(i) for i in inputs)}; give {kind} or folders holding them")
    return list(dict.fromkeys(paths))
