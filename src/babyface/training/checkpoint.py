"""The checkpoint written after every epoch (``checkpoint.pt``), so that ``train --resume`` ends exactly as an
uninterrupted run: model, optimiser, scheduler, random-number states, epoch, history and the best model so far."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from babyface.config import TrainConfig
from babyface.errors import BabyfaceError
from babyface.outputs import atomic_path
from babyface.training.trainer import Trainer

CHECKPOINT_FORMAT = "babyface-checkpoint"


@dataclass
class TrainingState:
    """Everything a resumed run needs besides the data: saved after every epoch."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"val_macro_f1": None, "epoch": 0})
    best_state: dict | None = None
    saved_epoch: int = 0  # the last epoch whose checkpoint is on disk


def improves_on_best(row: dict, best: dict) -> bool:
    """A higher validation macro-F1 than the best epoch's; without a validation split every epoch does (the last is kept)."""
    if math.isnan(row["val_macro_f1"]):
        return True
    return best.get("val_macro_f1") is None or row["val_macro_f1"] > best["val_macro_f1"]


def save_checkpoint(path: Path, trainer: Trainer, state: TrainingState) -> None:
    """One dict of tensors and plain values (torchvision-reference style), written atomically."""
    adversary = trainer.objective.adversary
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model": trainer.network.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": state.epoch,
        "history": state.history,
        "best": state.best,
        "best_state": state.best_state,
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "adversary": adversary.state_dict() if adversary is not None else None,
        "compute": trainer.compute.state(),
    }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def stored_compute(path: Path, config: TrainConfig, device: torch.device) -> dict | None:
    """The number format and layout a checkpointed run began with (memory-mapped: no weights are read); checkpoints
    of earlier versions, which did not record it, computed as their config said then."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a missing or damaged checkpoint is reported by restore_checkpoint
        return None
    if not isinstance(checkpoint, dict):
        return None
    if isinstance(checkpoint.get("compute"), dict):
        return checkpoint["compute"]
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    return {"precision": "bf16" if bf16 else "fp32", "channels_last": config.channels_last == "on"}


def restore_checkpoint(path: Path, trainer: Trainer) -> TrainingState:
    """Load ``path`` into ``trainer`` (model, optimiser, EMA, adversary, scheduler, generator, torch's random state);
    returns the training state to continue from."""
    checkpoint = _read_checkpoint(path)
    adversary = trainer.objective.adversary
    try:
        trainer.network.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(checkpoint["ema"])
        if adversary is not None:
            adversary.load_state_dict(checkpoint["adversary"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise BabyfaceError(f"{path}: checkpoint does not fit this run's model ({str(exc).splitlines()[0][:120]}); "
                            "resume with the config.yaml it was written with") from None
    trainer.scheduler.load_state_dict(checkpoint["scheduler"])
    trainer.generator.set_state(checkpoint["generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    epoch = checkpoint["epoch"]
    return TrainingState(epoch, checkpoint["history"], checkpoint["best"], checkpoint["best_state"], saved_epoch=epoch)


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise BabyfaceError(f"{path}: no checkpoint to resume from; was this folder written by 'babyface train'?")
    try:
        # weights_only: tensors and plain containers only, so a checkpoint cannot run code when loaded
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise BabyfaceError(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0][:120]}); it is damaged, train again") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise BabyfaceError(f"{path}: not a babyface checkpoint")
    return checkpoint
