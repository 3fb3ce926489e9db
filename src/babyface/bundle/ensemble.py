"""Ensembles: several trained runs as one bundle that predicts the mean of its members' calibrated probabilities.

``babyface ensemble RUN1 RUN2 --out ENS`` copies each member's bundle (``model.safetensors`` + ``model.json``) into
``ENS/members/NAME/`` and writes ``ENS/model.json`` with arch ``ensemble``, the member names, the shared classes and
the largest member image size. Loaded, an ensemble is one ``nn.Module`` that takes images scaled to 0..1 (its
model.json says mean 0, std 1), resizes, normalises and calibrates them for each member with that member's own
settings, and returns log(mean of the members' probabilities) as logits with temperature 1. Their softmax is that
mean again, so predict, evaluate, serve and export (one ONNX graph) treat an ensemble like any other run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from babyface.bundle.single import Bundle, bundle_metadata, load_single, read_metadata, weights_sha256
from babyface.config import EnsembleConfig
from babyface.data.images import display_path
from babyface.errors import BabyfaceError, BundleError, OutputExistsError
from babyface.faces.framing import shared_framing
from babyface.forward import normalise
from babyface.outputs import atomic_path, prepare_output_dir, write_json
from babyface.run import (
    ENSEMBLE,
    MEMBERS_DIR,
    META_FILE,
    SPLITS_FILE,
    WEIGHTS_FILE,
    MemberRecord,
    ModelMeta,
    RunFolder,
    SplitRow,
    write_split_manifest,
)

log = logging.getLogger("babyface")


class EnsembleModel(nn.Module):
    """Images N×3×S×S scaled to 0..1 → log of the mean of the members' calibrated probabilities, N×C."""

    arch_name = ENSEMBLE

    def __init__(self, members: Sequence[Bundle]):
        super().__init__()
        self.arch_kwargs: dict[str, Any] = {}
        self.members = nn.ModuleList(member.model for member in members)
        self.settings = [(member.image_size, member.mean, member.std, member.temperature) for member in members]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        log_probs = [torch.log_softmax(model(normalise(resized(images, size), mean, std)) / temperature, dim=1)
                     for model, (size, mean, std, temperature) in zip(self.members, self.settings)]
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size``×``size`` for a member trained at a smaller size than the ensemble's (ONNX opset 17
    has no antialiased resize, so none is used here either)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- writing


def create_ensemble(config: EnsembleConfig) -> Path:
    """Check the member runs, copy their bundles into ``config.out``/members/ and write the ensemble's model.json."""
    runs = [Path(run) for run in config.runs]
    if len(runs) < 2:
        raise BabyfaceError("an ensemble needs at least two runs: babyface ensemble RUN1 RUN2 [...] --out FOLDER")
    if not config.out:
        raise BabyfaceError("ensemble needs --out FOLDER, the new ensemble's folder")
    out = Path(config.out)
    inside = [run for run in runs if run.resolve().is_relative_to(out.resolve())]
    if inside:
        raise OutputExistsError(f"{out}: holds the member run {inside[0]}; choose another --out for the ensemble")
    members = [load_member_run(run) for run in runs]
    check_same_classes(members)
    names = member_names(runs)
    out = prepare_output_dir(out, overwrite=config.overwrite)
    shutil.rmtree(out / MEMBERS_DIR, ignore_errors=True)  # left over from an ensemble replaced with --overwrite
    (out / SPLITS_FILE).unlink(missing_ok=True)
    for name, member in zip(names, members):
        for file in (WEIGHTS_FILE, META_FILE):
            copy_file(member.path / file, out / MEMBERS_DIR / name / file)
    data = shared_data_records(members)
    if data:
        write_shared_splits(members, out / SPLITS_FILE)
    model = EnsembleModel(members)
    meta = bundle_metadata(model, members[0].classes, max(m.image_size for m in members), [0.0] * 3, [1.0] * 3,
                           members=[member_record(name, run, member) for name, run, member in zip(names, runs, members)],
                           combine="mean of the members' calibrated probabilities",
                           decision_classes=members[0].meta.decision_classes,
                           framing=shared_framing([member.meta for member in members]), **data)
    write_json(out / META_FILE, meta.to_json())  # last: a folder with model.json is a complete ensemble
    return out


def load_member_run(run: Path) -> Bundle:
    if read_metadata(run).is_ensemble:
        raise BundleError(f"{run}: is an ensemble itself; list the runs of its members instead")
    return load_single(run, read_metadata(run), "cpu")


def check_same_classes(members: Sequence[Bundle]) -> None:
    first = members[0]
    for member in members[1:]:
        if member.classes != first.classes:
            raise BundleError(f"{member.path}: classes {member.classes} differ from {first.classes} of {first.path}; "
                              "ensemble members must share one class list in the same order")
        if member.meta.decision_classes != first.meta.decision_classes:
            raise BundleError(f"{member.path}: decides over {member.meta.decides_over}, {first.path} over "
                              f"{first.meta.decides_over}; ensemble members must take decisions over the same classes")


def member_names(runs: Sequence[Path]) -> list[str]:
    """Each run's folder name, made unique with -2, -3 … (runs/a/seed0 and runs/b/seed0 → seed0, seed0-2)."""
    names: list[str] = []
    for run in runs:
        base = run.resolve().name or "member"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def member_record(name: str, run: Path, member: Bundle) -> MemberRecord:
    return MemberRecord(name=name, run=display_path(run), arch=member.meta.arch, image_size=member.image_size,
                        temperature=member.temperature, weights_sha256=weights_sha256(member.path))


def copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def shared_data_records(members: Sequence[Bundle]) -> dict[str, Any]:
    """The members' shared ``data`` record when every member was trained on the same data, else {} (evaluate then
    needs DATA for the ensemble)."""
    def key(member: Bundle) -> tuple:
        return member.meta.data.root, member.meta.data.sources, member.meta.data.label_map

    if not members[0].meta.data.known:
        return {}
    if any(key(m) != key(members[0]) for m in members):
        log.warning("WARNING: the members were trained on different data; give DATA to 'babyface evaluate' for the ensemble")
        return {}
    return {"data": members[0].meta.data}


def write_shared_splits(members: Sequence[Bundle], path: Path) -> None:
    """The ensemble's split manifest, from its members' manifests: an image is test only when every member held it
    out (different seeds hold out different images); otherwise the split of the first member that trained or
    validated on it."""
    manifests = [RunFolder(member.path).split_manifest() for member in members]
    if any(manifest is None for manifest in manifests):
        return
    splits = [{row.file: row.split for row in manifest.rows} for manifest in manifests]
    rows = [SplitRow(row.file, next((s for s in (m.get(row.file, "train") for m in splits) if s != "test"), "test"), row.label, row.source)
            for row in manifests[0].rows]
    held_out = [sum(split == "test" for split in s.values()) for s in splits]
    shared = sum(row.split == "test" for row in rows)
    if shared < max(held_out):
        log.info("the members held out different test images; the ensemble's test split is the %d that every member held out", shared)
    write_split_manifest(path, rows)


# ---------------------------------------------------------------- loading


def load_ensemble(folder: Path, meta: ModelMeta, device: torch.device | str = "cpu") -> Bundle:
    """Each member as a bundle (checked like any bundle, and against the hash recorded for it), then one model; the
    member records themselves were checked with the ensemble's model.json (``babyface.run.checked_member_records``)."""
    members = [load_ensemble_member(folder, entry, device) for entry in meta.members]
    for member in members:
        if member.classes != meta.classes:
            raise BundleError(f"{member.path}: classes {member.classes} differ from the ensemble's {meta.classes}; "
                              "the ensemble is inconsistent, recreate it with 'babyface ensemble'")
    if meta.image_size != max(member.image_size for member in members):
        raise BundleError(f"{folder / META_FILE}: image_size {meta.image_size} is not the largest member's; "
                          "the ensemble is inconsistent, recreate it with 'babyface ensemble'")
    return Bundle(EnsembleModel(members).to(device).eval(), meta, folder)


def load_ensemble_member(folder: Path, entry: MemberRecord, device: torch.device | str) -> Bundle:
    path = folder / MEMBERS_DIR / entry.name
    try:
        if read_metadata(path).is_ensemble:
            raise BundleError(f"{path}: an ensemble inside an ensemble is not supported")
        member = load_single(path, read_metadata(path), device)
    except BundleError as exc:
        raise BundleError(f"{folder}: member {entry.name!r} cannot be loaded ({exc}); recreate the ensemble with 'babyface ensemble'") from None
    if entry.weights_sha256 != weights_sha256(path):
        raise BundleError(f"{path}: weights differ from those the ensemble recorded; recreate it with 'babyface ensemble'")
    return member


def ensemble_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 over the members' names and weight hashes: what an ensemble's exported ONNX file is tied to."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for entry in read_metadata(folder).members:
        name = entry.name
        path = folder / MEMBERS_DIR / name
        if not (path / WEIGHTS_FILE).is_file():
            raise BundleError(f"{path}: no {WEIGHTS_FILE}; the ensemble is damaged, recreate it with 'babyface ensemble'")
        digest.update(f"{name}:{weights_sha256(path)}\n".encode())
    return digest.hexdigest()
