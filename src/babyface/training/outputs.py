"""What a training run leaves behind besides its checkpoint: the bundle (best weights, the temperature fitted on
validation, model.json's records), history.csv, the learning curves and train.log."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from babyface.bundle.single import bundle_metadata, save_bundle
from babyface.config import TrainConfig, to_dict
from babyface.data.images import display_path
from babyface.forward import predict_logits
from babyface.inference.calibration import calibration_summary, fit_temperature
from babyface.outputs import write_csv
from babyface.plots import plot_learning_curves
from babyface.run import CalibrationRecord, DataRecord, RunFolder, ValidationRecord
from babyface.training.checkpoint import TrainingState
from babyface.training.compute import Compute
from babyface.training.objective import Objective, decision_view
from babyface.training.prepare import PreparedData

log = logging.getLogger("babyface")

HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds"]


def write_run_outputs(config: TrainConfig, out: Path, data: PreparedData, model: nn.Module, state: TrainingState,
                      device: torch.device, objective: Objective, compute: Compute) -> None:
    """The run's bundle (the best epoch's weights, calibrated on validation, and model.json) and its learning curves."""
    history, best = state.history, state.best
    plot_learning_curves(history, RunFolder(out).learning_curves,
                         title=f"{config.model} on {' + '.join(p.name for p in data.source_folders)}")
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    temperature, calibration = calibrate_on_validation(model, data, device, config.batch_size)
    meta = bundle_metadata(
        model, data.classes, config.data_options.image_size, data.mean, data.std,
        temperature=temperature, training=to_dict(config),
        metrics=ValidationRecord(best_epoch=best["epoch"], val_macro_f1=best.get("val_macro_f1"), val_acc=best.get("val_acc"),
                                 val_loss=best.get("val_loss"), epochs_run=len(history),
                                 seconds_per_epoch=round(sum(r["seconds"] for r in history) / max(len(history), 1), 3)),
        data=DataRecord(root=display_path(data.root.resolve()), train=len(data.train), val=len(data.val),
                        test=sum(row.split == "test" for row in data.split_rows),
                        skipped=len(data.skipped), sources=[display_path(p.resolve()) for p in data.source_folders],
                        label_map=data.label_map, **objective.summary()),
        calibration=calibration, framing=data.framing,
        decision_classes=data.decisions,
        compute=compute.record(device),
    )
    save_bundle(out, model, meta)
    chosen = (f"validation macro-F1 {best['val_macro_f1']:.4f}" if best.get("val_macro_f1") is not None
              else "no validation split: the last epoch")
    log.info("best epoch %d (%s); bundle written to %s", best["epoch"], chosen, out)


def calibrate_on_validation(model: nn.Module, data: PreparedData, device: torch.device,
                            batch_size: int) -> tuple[float, CalibrationRecord]:
    """The temperature fitted on the validation logits of ``model`` (the best epoch), and what it did there; T = 1
    without validation."""
    if len(data.val) == 0:
        log.info("no validation split: temperature left at 1.0")
        return 1.0, CalibrationRecord(split="none")
    logits = predict_logits(model, data.val.images, data.mean, data.std, device, batch_size=max(batch_size, 64))
    logits, labels = decision_view(logits, data.val.labels, data.decision_index)
    summary = calibration_summary(logits, labels, fit_temperature(logits, labels))
    temperature = summary.pop("temperature")
    log.info("temperature %.3f fitted on validation: NLL %.4f -> %.4f, ECE %.4f -> %.4f", temperature,
             summary["nll_before"], summary["nll_after"], summary["ece_before"], summary["ece_after"])
    return temperature, CalibrationRecord(split="validation", **summary)


def write_history(path: Path, history: list[dict]) -> None:
    """history.csv: one row per epoch (HISTORY_FIELDS)."""
    write_csv(path, HISTORY_FIELDS, [[_fmt(row[k]) for k in HISTORY_FIELDS] for row in history])


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def attach_log_file(path: Path) -> logging.Handler:
    """Also log to ``path`` (the run's train.log) from now on; returns the handler to remove at the end."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
