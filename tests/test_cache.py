"""babyface.data.cache: decoded images reused across runs by content, rebuilt only for changed files, damage
detected and rebuilt, memory budget (--cache-mem) streaming from the cache file with the same training result."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from babyface.cli import build_config, build_parser
from babyface.config import DataConfig, TrainConfig
from babyface.data import decoded as decoded_module
from babyface.data.cache import DecodeCache, cache_dir_for, default_cache_dir, load_decoded
from babyface.data.decoded import DecodedImages, MappedImages, decode_images, fit_memory_budget
from babyface.errors import ImageDecodeError
from babyface.training.fit import fit
from babyface.training.prepare import prepare_data

SIZE = 16


@pytest.fixture
def faces(tmp_path: Path, tiny_data: Path) -> list[Path]:
    """A private copy of 12 synthetic faces (tests edit, rename and break them)."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in sorted((tiny_data / "train").rglob("*.jpg"))[:12]:
        shutil.copy(path, folder / path.name)
    return sorted(folder.iterdir())


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """Every path that is actually decoded (not taken from the cache), in order."""
    seen: list[Path] = []
    real = decoded_module.load_resized

    def counting(path, size, max_pixels):
        seen.append(Path(path))
        return real(path, size, max_pixels=max_pixels)

    monkeypatch.setattr(decoded_module, "load_resized", counting)
    return seen


def cached(paths, folder: Path, labels=None, size: int = SIZE, **options) -> DecodedImages:
    """``paths`` through the decode cache in ``folder`` (labels 0, 1, ... unless given)."""
    opts = DataConfig(image_size=size, cache_dir=str(folder), **options)
    return load_decoded(paths, list(range(len(paths))) if labels is None else labels, opts, False, "decode")


def plain(paths) -> torch.Tensor:
    return decode_images(paths, None, SIZE, progress=False).images


def test_second_run_decodes_nothing_and_matches_plain_decoding(faces, tmp_path, decodes) -> None:
    folder = tmp_path / "cache"
    first = cached(faces, folder)
    assert decodes == faces and isinstance(first.images, MappedImages)
    decodes.clear()
    second = cached(faces, folder)
    assert decodes == []
    assert torch.equal(second.images.load(), plain(faces))
    assert second.labels.tolist() == list(range(12)) and second.paths == faces
    assert not any(p.name.startswith(".") or p.suffix in (".npy", ".json") for p in faces[0].parent.iterdir())  # data folder untouched


def test_only_changed_and_new_files_are_decoded_and_renamed_files_hit(faces, tmp_path, decodes, write_tiny_png) -> None:
    folder = tmp_path / "cache"
    cached(faces, folder)
    decodes.clear()
    write_tiny_png(faces[3], value=10, size=20)  # edited
    added = write_tiny_png(faces[0].parent / "added.png", value=200, size=20)
    renamed = faces[5].rename(faces[5].with_name("renamed.png"))
    paths = [*faces[:5], renamed, *faces[6:], added]
    result = cached(paths, folder)
    assert sorted(decodes) == sorted([faces[3], added])
    assert torch.equal(result.images.load(), plain(paths))
    decodes.clear()
    again = cached(paths, folder)
    assert decodes == [] and torch.equal(again.images.load(), result.images.load())
    assert len(list(folder.glob("*.npy"))) == 1  # the superseded data file is removed


def test_other_sizes_and_folders_get_their_own_pool(faces, tmp_path, decodes) -> None:
    folder = tmp_path / "cache"
    cached(faces, folder)
    decodes.clear()
    other = cached(faces, folder, labels=[-1] * 12, size=32)
    assert len(decodes) == 12 and other.images.shape == (12, 3, 32, 32)
    assert len(list(folder.glob("*.json"))) == 2


@pytest.mark.parametrize("damage", ["truncate data", "flip a pixel", "garbage index", "foreign index", "missing data", "row out of range"])
def test_damaged_cache_is_reported_and_rebuilt(faces, tmp_path, decodes, caplog, damage) -> None:
    folder = tmp_path / "cache"
    cached(faces, folder)
    index_path = next(folder.glob("*.json"))
    index = json.loads(index_path.read_text())
    data = folder / index["data"]
    if damage == "truncate data":
        data.write_bytes(data.read_bytes()[:-100])
    elif damage == "flip a pixel":
        raw = bytearray(data.read_bytes())
        raw[-5] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "garbage index":
        index_path.write_text("{not json")
    elif damage == "foreign index":
        index_path.write_text(json.dumps({**index, "format": "something-else"}))
    elif damage == "missing data":
        data.unlink()
    else:
        index["entries"][0][4] = 10**6
        index_path.write_text(json.dumps(index))
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="babyface"):
        result = cached(faces, folder)
    assert "is damaged" in caplog.text and str(index_path) in caplog.text
    assert len(decodes) == 12
    assert torch.equal(result.images.load(), plain(faces))


def test_undecodable_file_is_remembered_and_skipped_without_rewriting(faces, tmp_path, decodes, caplog) -> None:
    folder = tmp_path / "cache"
    faces[2].write_bytes(b"not an image")
    first = cached(faces, folder)
    assert len(first) == 11 and len(first.skipped) == 1 and str(faces[2].name) in first.skipped[0]
    index_path = next(folder.glob("*.json"))
    written = index_path.stat().st_mtime_ns
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="babyface"):
        second = cached(faces, folder)
    assert decodes == [] and index_path.stat().st_mtime_ns == written
    assert second.skipped == first.skipped and "skipped" in caplog.text and faces[2].name in caplog.text
    with pytest.raises(ImageDecodeError, match="stopped by --strict"):
        cached(faces, folder, strict=True)


def test_unwritable_cache_folder_falls_back_to_memory_with_a_warning(faces, tmp_path, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="babyface"):
        result = cached(faces, blocker / "cache")
    assert "cannot write the decode cache" in caplog.text
    assert isinstance(result.images, torch.Tensor) and torch.equal(result.images, plain(faces))


def test_cache_folder_options(monkeypatch, tmp_path, faces) -> None:
    monkeypatch.setenv("BABYFACE_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert cache_dir_for(DataConfig()) == tmp_path / "env"
    assert cache_dir_for(DataConfig(cache_dir=str(tmp_path / "flag"))) == tmp_path / "flag"
    assert cache_dir_for(DataConfig(cache=False)) is None
    monkeypatch.delenv("BABYFACE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "babyface"
    uncached = load_decoded(faces, [0] * 12, DataConfig(image_size=SIZE, cache=False), False, "decode")
    assert isinstance(uncached.images, torch.Tensor) and not (tmp_path / "xdg").exists()
    args = build_parser().parse_args(["train", "DATA", "--no-cache", "--cache-dir", "/x", "--cache-mem", "0.5"])
    opts = build_config(TrainConfig, args, data=args.data).data_options
    assert (opts.cache, opts.cache_dir, opts.cache_mem) == (False, "/x", 0.5)


def test_mapped_images_behave_like_the_tensor(faces, tmp_path) -> None:
    mapped = cached(faces, tmp_path / "cache").images
    tensor = plain(faces)
    assert len(mapped) == 12 and mapped.shape == tensor.shape and mapped.numel() == tensor.numel()
    index = torch.tensor([5, 0, 5, 11])
    assert torch.equal(mapped[index], tensor[index]) and torch.equal(mapped[3], tensor[3]) and torch.equal(mapped[2:7], tensor[2:7])
    assert torch.equal(torch.cat(list(mapped.split(5))), tensor)
    assert torch.equal(mapped.take([4, 1]).load(), tensor[[4, 1]])
    assert not mapped.array.flags.writeable


def test_memory_budget_holds_or_streams(faces, tmp_path) -> None:
    data = cached(faces, tmp_path / "cache")
    parts = [data.subset(range(8)), data.subset(range(8, 12))]
    held = fit_memory_budget(parts, cache_mem=1.0)
    assert all(isinstance(p.images, torch.Tensor) for p in held)
    assert sum(p.images.untyped_storage().nbytes() for p in held) == 12 * 3 * SIZE * SIZE  # exactly the raw bytes
    streamed = fit_memory_budget(parts, cache_mem=0.001)
    assert all(isinstance(p.images, MappedImages) for p in streamed)
    assert torch.equal(streamed[1].images.load(), held[1].images)


def test_decode_images_holds_no_more_than_the_raw_bytes(faces) -> None:
    faces[1].write_bytes(b"broken")
    images = decode_images(faces, None, SIZE, progress=False).images
    assert images.shape[0] == 11 and images.untyped_storage().nbytes() <= 12 * 3 * SIZE * SIZE


@pytest.mark.slow
def test_training_streamed_from_the_cache_file_equals_training_in_memory(tiny_data, tmp_path, caplog) -> None:
    config = TrainConfig(data=str(tiny_data), model="cnn", epochs=2, progress=False, seed=4,
                         data_options=DataConfig(cache_dir=str(tmp_path / "cache")))
    tiny = config.replace(data_options=config.data_options.replace(cache_mem=0.01))
    assert isinstance(prepare_data(tiny).train.images, MappedImages)
    assert isinstance(prepare_data(config).train.images, torch.Tensor)
    runs = {}
    for name, options in {"memory": config, "streamed": tiny}.items():
        with caplog.at_level(logging.INFO, logger="babyface"):
            runs[name] = fit(options.replace(out=str(tmp_path / name)))
    assert "batches are read from the cache file" in caplog.text
    memory, streamed = (load_file(runs[n] / "model.safetensors") for n in ("memory", "streamed"))
    assert memory.keys() == streamed.keys() and all(torch.equal(memory[k], streamed[k]) for k in memory)
    history = {n: [line.rsplit(",", 1)[0] for line in (runs[n] / "history.csv").read_text().splitlines()] for n in runs}
    assert history["memory"] == history["streamed"]  # every column but the seconds


def test_pool_key_is_stable_and_separates_settings(faces, tmp_path) -> None:
    one = DecodeCache(tmp_path, SIZE, 100, faces)
    assert one.key == DecodeCache(tmp_path, SIZE, 100, list(reversed(faces))).key
    assert one.key != DecodeCache(tmp_path, SIZE + 1, 100, faces).key != DecodeCache(tmp_path, SIZE, 99, faces).key
    assert np.array_equal(one.empty().array.shape, (0, 3, SIZE, SIZE))


def test_requests_for_parts_of_one_folder_share_its_pool(faces, tmp_path, decodes, write_tiny_png) -> None:
    """E.g. training images, then the test split of the same one-folder dataset, then training images again."""
    folder = tmp_path / "cache"
    cached(faces[:8], folder)
    decodes.clear()
    cached(faces[8:], folder)
    assert decodes == faces[8:]
    decodes.clear()
    assert torch.equal(cached(faces[:8], folder).images.load(), cached(faces[8:] + faces[:8], folder).images.load()[4:])
    assert decodes == []
    faces[0].unlink()  # a file gone: its row is dropped at the next rebuild (here for a new file)
    cached(faces[1:4] + [write_tiny_png(faces[0].with_name("new.png"))], folder)
    entries = json.loads(next(folder.glob("*.json")).read_text())["entries"]
    assert sorted(Path(e[1]).name for e in entries) == sorted([p.name for p in faces[1:]] + ["new.png"])


def test_load_decoded_is_the_one_entry_point_and_decoded_never_calls_back(faces, tmp_path) -> None:
    unlabelled = load_decoded(faces, None, DataConfig(image_size=SIZE, cache_dir=str(tmp_path / "cache")), False, "decode")
    assert unlabelled.labels.tolist() == [-1] * 12 and isinstance(unlabelled.images, MappedImages)
    assert "babyface.data.cache" not in Path(decoded_module.__file__).read_text()  # the cache is built on decoded, not around it
