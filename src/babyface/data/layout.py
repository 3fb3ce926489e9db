"""Writing a dataset layout: images linked (or copied) into class folders, for data split and self-training."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from babyface.data.images import display_path
from babyface.errors import DataError


def link_or_copy(source: Path, target: Path, copy: bool = False) -> None:
    """A hard link of ``source`` at ``target`` (a copy across file systems or with ``copy``), folders made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not copy:
            try:
                os.link(source, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        shutil.copy2(source, target)
    except OSError as exc:
        raise DataError(f"{display_path(target)}: cannot write ({exc.strerror}); choose a writable OUT with free space") from None
