"""Training: ``fit(config)`` turns a dataset folder into a run folder holding a model bundle.

Plain functions in the style of torchvision's classification references: ``prepare_data``,
``train_one_epoch``, ``validate``; the best epoch on validation macro-F1 is kept, not the last.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from babyface.bundle.single import bundle_metadata, save_bundle
from babyface.config import TrainConfig, adversary_weight, data_sources, save_yaml, to_dict
from babyface.data.augment import apply_params, draw_params
from babyface.data.decoded import DecodedImages
from babyface.data.images import display_path
from babyface.data.mix import mix_batch, mixed_loss
from babyface.data.sources import load_label_map
from babyface.errors import BabyfaceError
from babyface.faces.framing import training_framing
from babyface.forward import index_batches, normalise, predict_logits
from babyface.inference.calibration import calibration_summary, fit_temperature
from babyface.metrics import macro_f1
from babyface.models import create_model
from babyface.outputs import atomic_path, prepare_output_dir, write_csv
from babyface.plots import plot_learning_curves
from babyface.progress import progress_bar
from babyface.run import RunFolder, write_split_manifest
from babyface.training.adversary import SourceAdversary, adversary_strength
from babyface.training.compute import Compute, choose_compute
from babyface.training.coverage import (
    MissingClassLoss,
    SourceCoverage,
    coverage_report,
    missing_class_log_prior,
    resolve_balance,
    resolve_rule,
    sampling_weights,
    source_coverage,
)
from babyface.training.distributed import DistInfo, barrier, init_distributed, rank0_flag, shutdown, sum_across
from babyface.training.finetune import freeze_stages, init_from, load_init_run, parameter_groups, train_mode
from babyface.training.prepare import PreparedData, prepare_data

log = logging.getLogger("babyface")

VALIDATION_METRICS = ("val_macro_f1", "val_acc", "val_loss")
HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds"]

# Called after every epoch with the model as validated (the EMA with --ema), the epoch's history row (plus
# "cpu_seconds", the process CPU time of the epoch's training and validation) and the prepared data; what it
# spends is outside the row's seconds. For benchmarks and notebooks; the CLI passes none.
EpochHook = Callable[[nn.Module, dict, PreparedData], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get 0)."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights.float()


def epoch_order(n: int, weights: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Shuffled indices for one epoch; with draw ``weights`` (a balancing sampler) drawn with replacement."""
    if weights is not None:
        return torch.multinomial(weights.double(), n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


@dataclass
class Objective:
    """How training images are drawn and what a step minimises: the class loss (missing-class-aware when
    sources cover different classes) and, with --source-adversary, the reversed source guess."""

    loss_fn: nn.Module
    coverage: SourceCoverage
    weights: torch.Tensor | None = None  # sampler draw weights per training image; None: plain shuffle
    source_aware: bool = False  # loss_fn takes each image's source after its label
    adversary: SourceAdversary | None = None
    adversary_weight: float = 0.0
    rule: str = "off"  # the missing-class rule in force (see coverage.resolve_rule)
    balance: str = "none"  # the sampler in force (see coverage.resolve_balance)

    def summary(self) -> dict:
        """What the bundle records about how sources and their missing classes were handled."""
        return {"coverage": self.coverage.to_dict(), "missing_classes": self.rule, "class_balance": self.balance,
                "source_adversary": self.adversary_weight if self.adversary is not None else 0.0}

    @classmethod
    def plain(cls, data: DecodedImages, loss_fn: nn.Module | None = None) -> "Objective":
        """One source, a plain shuffle, ``loss_fn`` (default cross-entropy): the reference's training step."""
        classes = [str(c) for c in range(int(data.labels.max()) + 1)]
        return cls(loss_fn or nn.CrossEntropyLoss(), source_coverage(data.labels, [""] * len(data), classes))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, lam: float,
             progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(what to minimise, the class loss alone): history.csv reports the class loss, comparable with or without
        the adversary's source term."""
        class_loss = mixed_loss(self.loss_fn, logits, labels, lam, *([sources] if self.source_aware else []))
        if self.adversary is None:
            return class_loss, class_loss
        return class_loss + self.adversary.loss(sources, adversary_strength(self.adversary_weight, progress)), class_loss


def build_objective(config: TrainConfig, data: PreparedData, model: nn.Module, device: torch.device) -> Objective:
    """The loss, sampler weights and optional source adversary for ``data``; logs the coverage table."""
    coverage = source_coverage(data.train.labels, [data.sources.get(p, "") for p in data.train.paths], data.classes)
    rule = resolve_rule(config.missing_classes, coverage)
    balance = resolve_balance(config.class_balance, coverage)
    weights = sampling_weights(coverage, balance)
    class_weight = class_weights(data.train.labels, len(data.classes)).to(device) if balance == "loss" else None
    if rule == "off":
        loss_fn: nn.Module = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=config.label_smoothing)
    else:
        loss_fn = MissingClassLoss(missing_class_log_prior(coverage, rule, weights), class_weight, config.label_smoothing)
    if coverage.uneven or len(coverage.sources) > 1:
        for line in coverage_report(coverage, rule, balance):
            log.info(line)
    adversary, strength = None, adversary_weight(config.source_adversary, coverage.uneven)
    if strength > 0:
        if len(coverage.sources) < 2:
            log.warning("--source-adversary ignored: it needs at least two sources (--data) to tell apart")
        else:
            adversary = SourceAdversary(model, len(coverage.sources)).to(device)
            log.info("source adversary: weight %g (a gradient-reversal head hides which source an image came from)", strength)
    return Objective(loss_fn.to(device), coverage, weights, rule != "off", adversary, strength, rule, balance)


def train_one_epoch(
    model: nn.Module,
    data: DecodedImages,
    mean: list[float],
    std: list[float],
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    config: TrainConfig,
    generator: torch.Generator,
    desc: str = "train",
    dist: DistInfo = DistInfo(),
    ema: AveragedModel | None = None,
    epoch: int = 1,
    compute: Compute | None = None,
) -> dict[str, float]:
    """One pass over ``data``; under DDP each process trains on its slice of every global batch.
    ``ema`` is updated after every step; ``compute`` is the number format and layout (default fp32, NCHW)."""
    compute = compute or Compute()
    train_mode(model)
    if objective.adversary is not None:
        objective.adversary.train()
    order = epoch_order(len(data), objective.weights, generator)
    total_loss, correct, seen = 0.0, 0, 0
    batches = list(index_batches(len(order), config.batch_size * dist.world_size, order))
    bar = progress_bar(batches, config.progress and dist.is_main, desc=desc, unit="batch", leave=False)
    for step, index in enumerate(bar):
        params = draw_params(len(index), config.augment, generator) if config.augment.enabled else None
        mine = dist.local_slice(len(index))
        index = index[mine]
        images = data.images[index].to(device, non_blocking=True).float().div_(255.0)
        if params is not None:
            images = apply_params(images, params[mine])
        labels = data.labels[index].to(device, non_blocking=True)
        sources = objective.coverage.source_ids[index].to(device, non_blocking=True)
        images, lam = mix_batch(images, config.mixup, config.cutmix, generator)
        inputs = compute.inputs(normalise(images, mean, std))
        with compute.precision.autocast(device):
            logits = model(inputs)
        progress = (epoch - 1 + step / len(batches)) / config.epochs
        loss, class_loss = objective.loss(logits.float(), labels, sources, lam, progress)
        optimizer.zero_grad(set_to_none=True)
        compute.backward_and_step(loss, optimizer)
        if ema is not None:
            ema.update_parameters(unwrap(model))
        total_loss += class_loss.item() * len(index)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(index)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    total_loss, correct, seen = sum_across([total_loss, correct, seen], dist, device)
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}


def validate(model: nn.Module, data: DecodedImages, mean: list[float], std: list[float], device: torch.device, batch_size: int,
             compute: Compute | None = None, decision_index: list[int] | None = None) -> dict[str, float]:
    """Loss, accuracy and macro-F1 on validation; with ``decision_index``, over those classes' images and logits only,
    as evaluate and predict will decide."""
    compute = compute or Compute()
    logits = predict_logits(model, data.images, mean, std, device, batch_size=max(batch_size, 64),
                            precision=compute.precision, channels_last=compute.channels_last) if len(data) else None
    logits, labels = decision_view(logits, data.labels, decision_index)
    if logits is None or len(labels) == 0:
        return {"val_loss": float("nan"), "val_acc": float("nan"), "val_macro_f1": float("nan")}
    pred = logits.argmax(1)
    return {
        "val_loss": float(nn.functional.cross_entropy(logits, labels)),
        "val_acc": float((pred == labels).float().mean()),
        "val_macro_f1": macro_f1(labels.tolist(), pred.tolist()),
    }


def decision_view(logits: torch.Tensor | None, labels: torch.Tensor, index: list[int] | None):
    """The logits of the decision classes for the images labelled with one of them, labels renumbered; as given
    when decisions are over every class."""
    if logits is None or index is None:
        return logits, labels
    position = torch.full((logits.shape[1],), -1, dtype=torch.long)
    position[torch.tensor(index)] = torch.arange(len(index))
    kept = position[labels] >= 0
    return logits[kept][:, index], position[labels[kept]]


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


def fit(config: TrainConfig, resume: bool = False, on_epoch: EpochHook | None = None) -> Path:
    """Train ``config.model`` on ``config.data``; returns the run folder (``config.out``).

    With ``resume`` the run continues from ``config.out/checkpoint.pt``: model, optimiser, scheduler,
    random-number states, epoch, history and best model, so it ends exactly as an uninterrupted run.
    Under torchrun only rank 0 writes. ``on_epoch`` (see EpochHook) is called after every epoch.
    """
    if config.unlabelled and not resume:
        from babyface.training.selftrain import fit_self_training

        return fit_self_training(config, fit)
    dist, device = init_distributed(config.device)
    out = Path(config.out)
    handler = None
    try:
        if dist.is_main:
            if not resume:
                prepare_output_dir(out, overwrite=config.overwrite)
            handler = _attach_log_file(RunFolder(out).train_log)
        else:
            log.setLevel(logging.ERROR)  # one voice: rank 0 reports progress and warnings (e.g. leakage) once
        barrier(dist)
        return _fit(config, out, device, dist, resume, on_epoch)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        shutdown(dist)


def _fit(config: TrainConfig, out: Path, device: torch.device, dist: DistInfo, resume: bool,
         on_epoch: EpochHook | None = None) -> Path:
    seed_everything(config.seed)
    data = prepare_data(config)
    model = build_model(config, data).to(device)
    compute = choose_compute(config, model, device, stored_compute(RunFolder(out).checkpoint, config, device) if resume else None,
                             agree=lambda flag: rank0_flag(flag, dist, device))
    if config.sync_bn and dist.enabled:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            log.warning("--sync-bn ignored: PyTorch's SyncBatchNorm works on CUDA only; BatchNorm statistics stay per process")
    objective = build_objective(config, data, model, device)
    optimizer = build_optimizer(model, config)
    if objective.adversary is not None:
        optimizer.add_param_group({"params": list(objective.adversary.parameters()), "lr": config.lr})
        if dist.enabled:
            objective.adversary.head = DistributedDataParallel(objective.adversary.head)
    scheduler = build_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    ema = AveragedModel(model, avg_fn=ema_with_warmup(config.ema), use_buffers=True) if config.ema else None
    state = TrainingState()
    if resume:
        state = restore_checkpoint(RunFolder(out).checkpoint, model, optimizer, scheduler, generator, ema, objective.adversary)
        log.info("resuming %s after epoch %d of %d", out, state.epoch, config.epochs)
    if dist.is_main:
        save_yaml(config, RunFolder(out).config)
        write_split_manifest(RunFolder(out).splits, data.split_rows)
    log.info("data %s: classes %s, %d train, %d val, %d skipped; device %s%s",
             " + ".join(data_sources(config)), data.classes, len(data.train), len(data.val), len(data.skipped), device,
             f", {dist.world_size} processes (global batch {config.batch_size * dist.world_size})" if dist.enabled else "")
    trained = DistributedDataParallel(model) if dist.enabled else model
    try:
        run_epochs(config, out, data, trained, objective, optimizer, scheduler, generator, device, dist, state, ema,
                   on_epoch, compute)
    except KeyboardInterrupt:
        if state.saved_epoch:
            log.warning("interrupted; the checkpoint of epoch %d is kept: continue with 'babyface train --resume %s'",
                        state.saved_epoch, out)
        else:
            log.warning("interrupted before the first epoch ended; nothing to resume, train again")
        raise
    if dist.is_main:
        _write_outputs(config, out, data, model, state, device, objective, compute)
    return out


def ema_with_warmup(decay: float):
    """EMA update for ``AveragedModel`` whose decay ramps up as (1 + n) / (10 + n) until ``decay``, so the
    average follows the fast early weights instead of staying near the random initialisation (as timm's EMA)."""

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        rate = min(decay, (1 + n) / (10 + n))
        return averaged * rate + current * (1 - rate) if averaged.is_floating_point() else current

    return update


def build_model(config: TrainConfig, data: PreparedData) -> nn.Module:
    """A fresh model, or with ``--init`` one starting from that run's weights and normalisation
    (its architecture options, updated by --model-arg), with ``--freeze-stages`` applied."""
    if not config.init:
        return create_model(config.model, len(data.classes), config.data_options.image_size, color=config.color,
                            **config.model_args)
    bundle = load_init_run(config.init, config.model)
    options = {**bundle.meta.arch.kwargs, "color": config.color, **config.model_args}
    model = create_model(config.model, len(data.classes), config.data_options.image_size, **options)
    init_from(model, bundle, data.classes)
    data.mean, data.std = bundle.mean, bundle.std  # the pretrained first layer expects its own input scale
    freeze_stages(model, config.freeze_stages)
    return model


def run_epochs(config, out, data, model, objective: Objective, optimizer, scheduler, generator, device, dist,
               state: TrainingState, ema: AveragedModel | None = None, on_epoch: EpochHook | None = None,
               compute: Compute | None = None) -> None:
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if config.early_stopping and state.epoch - state.best["epoch"] >= config.early_stopping:
            log.info("early stopping: no validation macro-F1 gain for %d epochs", config.early_stopping)
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        row = {"epoch": epoch, "lr": optimizer.param_groups[-1]["lr"]}  # the classifier's: --init-lr-scale lowers the others
        row.update(train_one_epoch(model, data.train, data.mean, data.std, objective, optimizer, device, config, generator,
                                   desc=f"epoch {epoch}/{config.epochs}", dist=dist, ema=ema, epoch=epoch, compute=compute))
        evaluated = ema.module if ema is not None else unwrap(model)  # with --ema the average is what gets kept
        row.update(validate(evaluated, data.val, data.mean, data.std, device, config.batch_size, compute, data.decision_index))
        scheduler.step()
        row["seconds"] = round(time.perf_counter() - start, 3)
        row["cpu_seconds"] = round(time.process_time() - cpu_start, 3)
        state.epoch = epoch
        state.history.append(row)
        log.info(_format_epoch(row, config.epochs))
        if improves_on_best(row, state.best):
            state.best = {"epoch": epoch, **{k: None if math.isnan(row[k]) else row[k] for k in VALIDATION_METRICS}}
            state.best_state = copy.deepcopy(evaluated.state_dict())
        if dist.is_main:
            save_checkpoint(RunFolder(out).checkpoint, unwrap(model), optimizer, scheduler, generator, state, ema, objective.adversary,
                            compute)
            state.saved_epoch = epoch
            _write_history(RunFolder(out).history, state.history)
        if on_epoch is not None:
            on_epoch(evaluated, row, data)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def save_checkpoint(path: Path, model, optimizer, scheduler, generator: torch.Generator, state: TrainingState,
                    ema: AveragedModel | None = None, adversary: SourceAdversary | None = None,
                    compute: Compute | None = None) -> None:
    """One dict of tensors and plain values (torchvision-reference style), written atomically."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": state.epoch,
        "history": state.history,
        "best": state.best,
        "best_state": state.best_state,
        "ema": ema.state_dict() if ema is not None else None,
        "adversary": adversary.state_dict() if adversary is not None else None,
        "compute": (compute or Compute()).state(),
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


def restore_checkpoint(path: Path, model, optimizer, scheduler, generator: torch.Generator,
                       ema: AveragedModel | None = None, adversary: SourceAdversary | None = None) -> TrainingState:
    if not path.is_file():
        raise BabyfaceError(f"{path}: no checkpoint to resume from; was this folder written by 'babyface train'?")
    try:
        # weights_only: tensors and plain containers only, so a checkpoint cannot run code when loaded
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise BabyfaceError(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0][:120]}); it is damaged, train again") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise BabyfaceError(f"{path}: not a babyface checkpoint")
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if ema is not None:
            ema.load_state_dict(checkpoint["ema"])
        if adversary is not None:
            adversary.load_state_dict(checkpoint["adversary"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise BabyfaceError(f"{path}: checkpoint does not fit this run's model ({str(exc).splitlines()[0][:120]}); "
                            "resume with the config.yaml it was written with") from None
    scheduler.load_state_dict(checkpoint["scheduler"])
    generator.set_state(checkpoint["generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    epoch = checkpoint["epoch"]
    return TrainingState(epoch, checkpoint["history"], checkpoint["best"], checkpoint["best_state"], saved_epoch=epoch)


def _write_outputs(config: TrainConfig, out: Path, data: PreparedData, model: nn.Module, state: TrainingState,
                   device: torch.device, objective: Objective, compute: Compute) -> None:
    history, best = state.history, state.best
    plot_learning_curves(history, RunFolder(out).learning_curves, title=f"{config.model} on {' + '.join(Path(p).name for p in data_sources(config))}")
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    calibration = calibrate_on_validation(model, data, device, config.batch_size)
    meta = bundle_metadata(
        model, data.classes, config.data_options.image_size, data.mean, data.std,
        training=to_dict(config),
        metrics={"best_epoch": best["epoch"], "val_macro_f1": best.get("val_macro_f1"), "val_acc": best.get("val_acc"),
                 "val_loss": best.get("val_loss"), "epochs_run": len(history),
                 "seconds_per_epoch": round(sum(r["seconds"] for r in history) / max(len(history), 1), 3)},
        data={"root": display_path(data.root.resolve()), "train": len(data.train), "val": len(data.val),
              "skipped": len(data.skipped), "sources": [display_path(Path(p).resolve()) for p in data_sources(config)],
              "label_map": load_label_map(config.data_options.label_map) if config.data_options.label_map else {},
              **objective.summary()},
        calibration=calibration, framing=training_framing(config.data_options.framing, data_sources(config)),
        decision_classes=data.decisions,
        compute=compute.record(device),
    )
    meta.temperature = calibration["temperature"]
    save_bundle(out, model, meta)
    chosen = (f"validation macro-F1 {best['val_macro_f1']:.4f}" if best.get("val_macro_f1") is not None
              else "no validation split: the last epoch")
    log.info("best epoch %d (%s); bundle written to %s", best["epoch"], chosen, out)


def calibrate_on_validation(model: nn.Module, data: PreparedData, device: torch.device, batch_size: int) -> dict:
    """Fit the temperature on the validation logits of ``model`` (the best epoch); T = 1 without validation."""
    if len(data.val) == 0:
        log.info("no validation split: temperature left at 1.0")
        return {"temperature": 1.0, "split": "none"}
    logits = predict_logits(model, data.val.images, data.mean, data.std, device, batch_size=max(batch_size, 64))
    logits, labels = decision_view(logits, data.val.labels, data.decision_index)
    summary = calibration_summary(logits, labels, fit_temperature(logits, labels))
    log.info("temperature %.3f fitted on validation: NLL %.4f -> %.4f, ECE %.4f -> %.4f", summary["temperature"],
             summary["nll_before"], summary["nll_after"], summary["ece_before"], summary["ece_after"])
    return {**summary, "split": "validation"}


def _format_epoch(row: dict, epochs: int) -> str:
    validation = ("no validation split" if math.isnan(row["val_loss"]) else
                  f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f}")
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"{validation}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")


def _write_history(path: Path, history: list[dict]) -> None:
    write_csv(path, HISTORY_FIELDS, [[_fmt(row[k]) for k in HISTORY_FIELDS] for row in history])


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
