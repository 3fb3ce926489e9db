"""Manifests: a CSV with a ``file`` column (relative to DATA) and columns such as a group id per file."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from babyface.data.images import display_path
from babyface.errors import DataError

log = logging.getLogger("babyface")


@dataclass
class ManifestColumn:
    """``values`` maps a file (relative to DATA, '/'-separated) to its value in one column."""

    column: str
    values: dict[str, str]
    missing_files: list[str] = field(default_factory=list)  # rows naming files that are not in DATA


def read_manifest_column(manifest: str | os.PathLike, column: str, data_root: str | os.PathLike,
                         flag: str = "--manifest", needs: str = "the --group-by column") -> ManifestColumn:
    """Read ``column`` of ``manifest``; rows naming files absent from ``data_root`` are counted and logged, not fatal.
    ``flag`` and ``needs`` name the option that gave the file and what it must hold, for the error messages."""
    path, root = Path(manifest), Path(data_root)
    where = display_path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if "file" not in header or column not in header:
                wanted = "file" if "file" not in header else column
                raise DataError(f"{where}: no column '{wanted}' (columns: {', '.join(header) or 'none'}); "
                                f"give a CSV with 'file' and {needs}")
            values = {row["file"].replace("\\", "/"): (row[column] or "").strip() for row in reader}
    except FileNotFoundError:
        raise DataError(f"{where}: not found; check the {flag} path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{where}: cannot read manifest CSV ({str(exc).splitlines()[0]}); fix or re-export it") from None
    missing = sorted(f for f in values if not (root / f).is_file())
    if missing:
        log.warning("%s: %d row(s) name files that are not in %s (first: %s); they are ignored",
                    where, len(missing), display_path(root), missing[0])
    return ManifestColumn(column, {f: v for f, v in values.items() if f not in set(missing)}, missing)
