"""How a training computes: the number format (--precision) and memory layout (--channels-last), chosen at run time
for the hardware it runs on, logged with the reason, kept in the checkpoint (a resumed run computes as it began) and
recorded in model.json."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from babyface.config import TrainConfig
from babyface.data.cache import cache_dir_for
from babyface.hardware import Precision, choose_channels_last, choose_precision, cpu_info, layout_cache_file

log = logging.getLogger("babyface")


@dataclass
class Compute:
    precision: Precision = field(default_factory=lambda: Precision("fp32"))
    channels_last: bool = False
    layout_reason: str = ""
    scaler: torch.amp.GradScaler | None = None  # fp16 only: scales the loss so small gradients survive

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict:
        """What the checkpoint keeps, so that --resume computes exactly as the run began."""
        return {"precision": self.precision.name, "channels_last": self.channels_last,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def record(self, device: torch.device) -> dict:
        """model.json's ``training.compute``: what was chosen, why, and on what."""
        return {"precision": self.precision.name, "precision_reason": self.precision.reason,
                "channels_last": self.channels_last, "layout_reason": self.layout_reason, "device": str(device),
                "hardware": cpu_info().line() if device.type == "cpu" else torch.cuda.get_device_name(device)}


def choose_compute(config: TrainConfig, model: nn.Module, device: torch.device, stored: dict | None = None,
                   agree: Callable[[bool], bool] = lambda flag: flag) -> Compute:
    """--precision and --channels-last resolved for this model on this hardware (``stored``: a resumed run's own);
    logs the choice and its reason, and sets the model's layout. ``agree`` turns this process's layout into the one
    every process uses (under torchrun each measures its own, and timings differ between them)."""
    if stored:
        precision = Precision(stored["precision"], "as the run began (resumed)")
        if precision.name == "bf16" and choose_precision("auto", device, warn=False).name != "bf16":
            log.warning("WARNING: resuming in bf16 as the run began, but this hardware has no native bf16: slower")
        channels_last, layout_reason = bool(stored["channels_last"]), "as the run began (resumed)"
    else:
        precision = choose_precision(config.precision, device)
        shape = (config.batch_size, 3, config.data_options.image_size, config.data_options.image_size)
        channels_last, layout_reason = choose_channels_last(config.channels_last, model, shape, precision, device,
                                                            train=True, cache=layout_cache(config))
    if agree(channels_last) != channels_last:
        channels_last, layout_reason = not channels_last, "as process 0 measured it"
    scaler = torch.amp.GradScaler(device.type) if precision.needs_grad_scaler else None
    if scaler is not None and stored and stored.get("scaler"):
        scaler.load_state_dict(stored["scaler"])
    if channels_last:
        model.to(memory_format=torch.channels_last)
    log.info("precision %s (%s); layout %s (%s)", precision.name, precision.reason,
             "channels-last" if channels_last else "NCHW", layout_reason)
    return Compute(precision, channels_last, layout_reason, scaler)


def layout_cache(config: TrainConfig) -> Path | None:
    """Where measured layouts are remembered: the decode cache's folder (none with --no-cache)."""
    return layout_cache_file(cache_dir_for(config.data_options))
