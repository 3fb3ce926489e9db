"""Training: ``fit(config)`` turns a dataset folder into a run folder holding a model bundle.

The loop, read top to bottom: ``fit`` → ``_fit`` (data, model, trainer) → ``run_epochs`` → ``train_one_epoch`` and
``validate``; the best epoch on validation macro-F1 is kept, not the last. What a step minimises is in ``objective``,
what every epoch trains with in ``trainer``, what a resumed run continues from in ``checkpoint``.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from babyface.bundle.single import Bundle
from babyface.config import TrainConfig, data_sources, save_yaml
from babyface.data.augment import apply_params, draw_params
from babyface.data.mix import mix_batch
from babyface.forward import index_batches, normalise, predict_logits
from babyface.metrics import macro_f1
from babyface.models import create_model
from babyface.outputs import prepare_output_dir
from babyface.progress import progress_bar
from babyface.run import RunFolder, write_split_manifest
from babyface.training.checkpoint import TrainingState, improves_on_best, restore_checkpoint, save_checkpoint, stored_compute
from babyface.training.compute import Compute, choose_compute
from babyface.training.distributed import DistInfo, barrier, init_distributed, rank0_flag, shutdown, sum_across
from babyface.training.finetune import freeze_stages, init_from, load_init_run, train_mode
from babyface.training.objective import decision_view, epoch_order
from babyface.training.outputs import attach_log_file, write_history, write_run_outputs
from babyface.training.prepare import PreparedData, prepare_data
from babyface.training.trainer import Trainer, build_trainer
from babyface.training.who import fit_who

log = logging.getLogger("babyface")

VALIDATION_METRICS = ("val_macro_f1", "val_acc", "val_loss")

# Called after every epoch with the model as validated (the EMA with --ema), the epoch's history row (plus
# "cpu_seconds", the process CPU time of the epoch's training and validation) and the prepared data; what it
# spends is outside the row's seconds. For benchmarks and notebooks; the CLI passes none.
EpochHook = Callable[[nn.Module, dict, PreparedData], None]


def fit(config: TrainConfig, resume: bool = False, on_epoch: EpochHook | None = None, who: bool = True) -> Path:
    """Train ``config.model`` on ``config.data``; returns the run folder (``config.out``).

    With ``resume`` the run continues from ``config.out/checkpoint.pt``: model, optimiser, scheduler,
    random-number states, epoch, history and best model, so it ends exactly as an uninterrupted run.
    Under torchrun only rank 0 writes. ``on_epoch`` (see EpochHook) is called after every epoch. With ``--adults``
    (and ``who``) the infant-vs-adult model follows into RUN/who/ (babyface.training.who).
    """
    if config.unlabelled and not resume:
        from babyface.training.selftrain import fit_self_training

        out = fit_self_training(config, functools.partial(fit, who=False))
    else:
        out = _fit_run(config, resume, on_epoch)
    if who and trains_who(config):
        fit_who(config, out, fit)
    return out


def trains_who(config: TrainConfig) -> bool:
    return bool(config.data_options.adults) and config.data_options.label_by == "class"


def _fit_run(config: TrainConfig, resume: bool, on_epoch: EpochHook | None) -> Path:
    dist, device = init_distributed(config.device)
    out = Path(config.out)
    handler = None
    try:
        if dist.is_main:
            if not resume:
                prepare_output_dir(out, overwrite=config.overwrite)
            handler = attach_log_file(RunFolder(out).train_log)
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
    folder = RunFolder(out)
    init = load_init_run(config.init, config.model) if config.init else None
    # a pretrained first layer expects the input scale it was trained with
    data = prepare_data(config, (init.mean, init.std) if init is not None else None)
    model = build_model(config, data, init).to(device)
    compute = choose_compute(config, model, device, stored_compute(folder.checkpoint, config, device) if resume else None,
                             agree=lambda flag: rank0_flag(flag, dist, device))
    trainer = build_trainer(config, data, model, device, dist, compute)
    state = TrainingState()
    if resume:
        state = restore_checkpoint(folder.checkpoint, trainer)
        log.info("resuming %s after epoch %d of %d", out, state.epoch, config.epochs)
    if dist.is_main:
        save_yaml(config, folder.config)
        write_split_manifest(folder.splits, data.split_rows)
    log.info("data %s: classes %s, %d train, %d val, %d skipped; device %s%s",
             " + ".join(data_sources(config)), data.classes, len(data.train), len(data.val), len(data.skipped), device,
             f", {dist.world_size} processes (global batch {config.batch_size * dist.world_size})" if dist.enabled else "")
    try:
        run_epochs(trainer, state, folder, on_epoch)
    except KeyboardInterrupt:
        if state.saved_epoch:
            log.warning("interrupted; the checkpoint of epoch %d is kept: continue with 'babyface train --resume %s'",
                        state.saved_epoch, out)
        else:
            log.warning("interrupted before the first epoch ended; nothing to resume, train again")
        raise
    if dist.is_main:
        write_run_outputs(config, out, data, trainer.network, state, device, trainer.objective, compute)
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, data: PreparedData, init: Bundle | None = None) -> nn.Module:
    """A fresh model, or with ``--init`` (``init``: that run's bundle) one starting from its weights (its architecture
    options, updated by --model-arg), with ``--freeze-stages`` applied."""
    if init is None:
        return create_model(config.model, len(data.classes), config.data_options.image_size, color=config.color,
                            **config.model_args)
    options = {**init.meta.arch.kwargs, "color": config.color, **config.model_args}
    model = create_model(config.model, len(data.classes), config.data_options.image_size, **options)
    init_from(model, init, data.classes)
    freeze_stages(model, config.freeze_stages)
    return model


def run_epochs(trainer: Trainer, state: TrainingState, folder: RunFolder, on_epoch: EpochHook | None = None) -> None:
    """The epochs after ``state.epoch``: train, validate, step the schedule, keep the best, checkpoint."""
    config = trainer.config
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if config.early_stopping and state.epoch - state.best["epoch"] >= config.early_stopping:
            log.info("early stopping: no validation macro-F1 gain for %d epochs", config.early_stopping)
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        row = {"epoch": epoch, "lr": trainer.optimizer.param_groups[-1]["lr"]}  # the classifier's: --init-lr-scale lowers the others
        row.update(train_one_epoch(trainer, epoch))
        evaluated = trainer.evaluated  # with --ema the average is what gets kept
        row.update(validate(evaluated, trainer.data, trainer.device, config.batch_size, trainer.compute))
        trainer.scheduler.step()
        row["seconds"] = round(time.perf_counter() - start, 3)
        row["cpu_seconds"] = round(time.process_time() - cpu_start, 3)
        state.epoch = epoch
        state.history.append(row)
        log.info(_format_epoch(row, config.epochs))
        if improves_on_best(row, state.best):
            state.best = {"epoch": epoch, **{k: None if math.isnan(row[k]) else row[k] for k in VALIDATION_METRICS}}
            state.best_state = copy.deepcopy(evaluated.state_dict())
        if trainer.dist.is_main:
            save_checkpoint(folder.checkpoint, trainer, state)
            state.saved_epoch = epoch
            write_history(folder.history, state.history)
        if on_epoch is not None:
            on_epoch(evaluated, row, trainer.data)


def train_one_epoch(trainer: Trainer, epoch: int = 1) -> dict[str, float]:
    """One pass over the training images in the objective's order; under DDP each process trains on its slice of
    every global batch."""
    config, dist = trainer.config, trainer.dist
    train_mode(trainer.model)
    if trainer.objective.adversary is not None:
        trainer.objective.adversary.train()
    order = epoch_order(len(trainer.data.train), trainer.objective.weights, trainer.generator)
    total_loss, correct, seen = 0.0, 0, 0
    batches = list(index_batches(len(order), config.batch_size * dist.world_size, order))
    bar = progress_bar(batches, config.progress and dist.is_main, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                       leave=False)
    for step, index in enumerate(bar):
        loss, hits, n = train_step(trainer, index, progress=(epoch - 1 + step / len(batches)) / config.epochs)
        total_loss += loss * n
        correct += hits
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    total_loss, correct, seen = sum_across([total_loss, correct, seen], dist, trainer.device)
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}


def train_step(trainer: Trainer, index: torch.Tensor, progress: float) -> tuple[float, int, int]:
    """One optimiser step on this process's share of the global batch ``index`` (augmented and mixed as configured;
    ``progress``, 0..1 through the run, sets the adversary's strength); the EMA follows. Returns (class loss,
    correct guesses, images) of the share."""
    config, data, device, generator = trainer.config, trainer.data, trainer.device, trainer.generator
    params = draw_params(len(index), config.augment, generator) if config.augment.enabled else None  # drawn for the whole global batch
    mine = trainer.dist.local_slice(len(index))
    index = index[mine]
    images = data.train.images[index].to(device, non_blocking=True).float().div_(255.0)
    if params is not None:
        images = apply_params(images, params[mine])
    labels = data.train.labels[index].to(device, non_blocking=True)
    sources = trainer.objective.coverage.source_ids[index].to(device, non_blocking=True)
    images, lam = mix_batch(images, config.mixup, config.cutmix, generator)
    inputs = trainer.compute.inputs(normalise(images, data.mean, data.std))
    with trainer.compute.precision.autocast(device):
        logits = trainer.model(inputs)
    loss, class_loss = trainer.objective.loss(logits.float(), labels, sources, lam, progress)
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.compute.backward_and_step(loss, trainer.optimizer)
    if trainer.ema is not None:
        trainer.ema.update_parameters(trainer.network)
    return class_loss.item(), (logits.argmax(1) == labels).sum().item(), len(index)


def validate(model: nn.Module, data: PreparedData, device: torch.device, batch_size: int,
             compute: Compute | None = None) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of ``model`` on ``data``'s validation images; with --decide-over, over those
    classes' images and logits only, as evaluate and predict will decide."""
    compute = compute or Compute()
    val = data.val
    logits = predict_logits(model, val.images, data.mean, data.std, device, batch_size=max(batch_size, 64),
                            precision=compute.precision, channels_last=compute.channels_last) if len(val) else None
    logits, labels = decision_view(logits, val.labels, data.decision_index)
    if logits is None or len(labels) == 0:
        return {"val_loss": float("nan"), "val_acc": float("nan"), "val_macro_f1": float("nan")}
    pred = logits.argmax(1)
    return {
        "val_loss": float(nn.functional.cross_entropy(logits, labels)),
        "val_acc": float((pred == labels).float().mean()),
        "val_macro_f1": macro_f1(labels.tolist(), pred.tolist()),
    }


def _format_epoch(row: dict, epochs: int) -> str:
    validation = ("no validation split" if math.isnan(row["val_loss"]) else
                  f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f}")
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"{validation}  lr {row['lr']:.2e}  {row['seconds']:.1f}s")
