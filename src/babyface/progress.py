"""Progress bars for long work: on a terminal only (a log file gets the per-epoch summary lines instead)."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr; ``disable=None`` lets tqdm hide it when stderr is not a terminal."""
    return tqdm(iterable, disable=None if enabled else True, file=sys.stderr, dynamic_ncols=True, **kwargs)
