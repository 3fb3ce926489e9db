"""What every epoch trains and validates with, built once per run: ``Trainer``, one object instead of a dozen arguments
(model, objective, optimiser, scheduler, random generator, device, processes, EMA, number format, data, config)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from babyface.config import TrainConfig
from babyface.training.compute import Compute
from babyface.training.distributed import DistInfo
from babyface.training.finetune import parameter_groups
from babyface.training.objective import Objective, build_objective
from babyface.training.prepare import PreparedData

log = logging.getLogger("babyface")


@dataclass
class Trainer:
    """The epoch context: what ``run_epochs``, ``train_one_epoch`` and the checkpoint work with (``build_trainer``)."""

    config: TrainConfig
    data: PreparedData
    model: nn.Module  # as trained: wrapped in DistributedDataParallel under torchrun
    objective: Objective
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # shuffles, augmentation and mixing draws: saved in every checkpoint
    device: torch.device
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # stepped once per epoch by run_epochs
    dist: DistInfo = field(default_factory=DistInfo)
    ema: AveragedModel | None = None  # --ema: updated after every step, and what is validated and kept
    compute: Compute = field(default_factory=Compute)

    @property
    def network(self) -> nn.Module:
        """The model itself, without the DistributedDataParallel wrapper."""
        return unwrap(self.model)

    @property
    def evaluated(self) -> nn.Module:
        """The model as validated and kept: the average with --ema."""
        return self.ema.module if self.ema is not None else self.network


def build_trainer(config: TrainConfig, data: PreparedData, model: nn.Module, device: torch.device, dist: DistInfo,
                  compute: Compute) -> Trainer:
    """Objective, optimiser, schedule, seeded generator and EMA for ``model`` (on ``device``); wrapped for DDP under
    torchrun, with SyncBatchNorm on CUDA when --sync-bn asks for it."""
    model = _with_sync_bn(model, config, dist, device)
    objective = build_objective(config, data, model, device)
    optimizer = build_optimizer(model, config)
    if objective.adversary is not None:
        optimizer.add_param_group({"params": list(objective.adversary.parameters()), "lr": config.lr})
        if dist.enabled:
            objective.adversary.head = DistributedDataParallel(objective.adversary.head)
    scheduler = build_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    ema = AveragedModel(model, avg_fn=ema_with_warmup(config.ema), use_buffers=True) if config.ema else None
    trained = DistributedDataParallel(model) if dist.enabled else model
    return Trainer(config, data, trained, objective, optimizer, generator, device, scheduler, dist, ema, compute)


def _with_sync_bn(model: nn.Module, config: TrainConfig, dist: DistInfo, device: torch.device) -> nn.Module:
    """--sync-bn under torchrun: BatchNorm statistics shared across processes, on CUDA (the only place PyTorch has it)."""
    if not (config.sync_bn and dist.enabled):
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    log.warning("--sync-bn ignored: PyTorch's SyncBatchNorm works on CUDA only; BatchNorm statistics stay per process")
    return model


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = parameter_groups(model, config.lr, config.init_lr_scale if config.init else 1.0)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: StepLR as the reference, or cosine; both after an optional linear warm-up."""
    warmup = config.warmup_epochs

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        if config.scheduler == "step":
            return config.gamma ** ((epoch - warmup) // config.step_size)
        if config.scheduler == "cosine":
            progress = (epoch - warmup) / max(1, config.epochs - warmup)
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def ema_with_warmup(decay: float):
    """EMA update for ``AveragedModel`` whose decay ramps up as (1 + n) / (10 + n) until ``decay``, so the
    average follows the fast early weights instead of staying near the random initialisation (as timm's EMA)."""

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        rate = min(decay, (1 + n) / (10 + n))
        return averaged * rate + current * (1 - rate) if averaged.is_floating_point() else current

    return update


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model
