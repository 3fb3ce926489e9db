"""`babyface data crop`: cut square face crops out of whole-scene photos, keeping the class layout; OUT/framing.json
records how, so that training can record it in the bundle and evaluate and predict can frame test images the same way."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from babyface.config import CropConfig
from babyface.data.images import DEFAULT_MAX_PIXELS, load_rgb
from babyface.data.scan import list_dataset_files
from babyface.errors import ImageDecodeError
from babyface.faces.detectors import face_squares
from babyface.faces.framing import Framing, write_framing_file
from babyface.outputs import atomic_path, prepare_output_dir, write_csv, write_text
from babyface.progress import progress_bar

log = logging.getLogger("babyface")


def crop_faces(config: CropConfig) -> dict:
    """OUT/<same relative path> per crop (``_faceN`` suffix for extra faces), crops.csv, no_face.txt, unreadable.txt,
    framing.json. crops.csv carries the columns of SRC/manifest.csv (e.g. ``stem``, ``identity_group``) for each
    crop, so that ``data split OUT --manifest OUT/crops.csv --group-by stem`` keeps one photo's crops together."""
    framing = Framing("face", config.faces)  # an unknown --detector fails before any work
    root, listed, paths = list_dataset_files(config.src, min_classes=1)  # e.g. photos of crying infants: sad/ only
    extra_columns, manifest = source_manifest(root)
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    rows, no_face, unreadable = [], [], []
    for item, path in progress_bar(list(zip(listed, paths)), config.progress, desc="crop faces", unit="img"):
        try:
            image = load_rgb(path, max_pixels=DEFAULT_MAX_PIXELS)
        except ImageDecodeError as exc:
            log.warning("skipped %s", exc)
            unreadable.append(str(exc))
            continue
        squares = face_squares(image, config.faces)
        if not squares:
            no_face.append(item.file)
        for number, (box, score) in enumerate(squares if config.all_faces else squares[:1]):
            target = _crop_name(Path(item.file), number)
            _save(image.crop(box), out / target)
            carried = manifest.get(item.file, {})
            rows.append((item.file, target.as_posix(), *box, f"{score:.4f}", *(carried.get(c, "") for c in extra_columns)))
    write_csv(out / "crops.csv", [*CROP_COLUMNS, *extra_columns], rows)
    write_text(out / "no_face.txt", "".join(f"{f}\n" for f in no_face))
    write_framing_file(out, framing)
    if unreadable:
        write_text(out / "unreadable.txt", "".join(f"{e}\n" for e in unreadable))
    return {"out": str(out), "images": len(listed), "crops": len(rows), "no_face": len(no_face), "unreadable": len(unreadable)}


CROP_COLUMNS = ("source", "file", "left", "top", "right", "bottom", "score")


def source_manifest(root: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The columns of ROOT/manifest.csv other than crops.csv's own, and each listed file's values; none without one."""
    path = root / "manifest.csv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "file" not in (reader.fieldnames or []):
                return [], {}
            columns = [c for c in reader.fieldnames if c not in CROP_COLUMNS]
            return columns, {row["file"].replace("\\", "/"): row for row in reader}
    except FileNotFoundError:
        return [], {}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        log.warning("%s: not read (%s); crops.csv gets no manifest columns", path, exc)
        return [], {}


def _crop_name(source: Path, number: int) -> Path:
    """PNG stays PNG, everything else becomes JPEG; extra faces get ``_face2``, ``_face3``…"""
    stem = source.stem if number == 0 else f"{source.stem}_face{number + 1}"
    return source.with_name(stem + (".png" if source.suffix.lower() == ".png" else ".jpg"))


def _save(image, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".png":
            image.save(tmp, format="PNG")
        else:
            image.save(tmp, format="JPEG", quality=95)
