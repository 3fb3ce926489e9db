"""The infant-vs-adult model a run with ``--adults`` trains beside its emotion model, into RUN/who/.

It is an ordinary run (the same images, labelled by who is in them: the ``--adults`` sources are adults, the others
infants) of the same architecture for ``--who-epochs`` epochs, with every face's luminance histogram-equalised inside
the model so that a dataset's contrast (FER2013's copies are equalised, infant photos are not) cannot stand in for
age. It is a separate network on purpose: the emotion model's source adversary makes its features hide which source
a face came from, which is exactly what telling adults from infants needs. who.json records the sources and the
validation AUC of the epoch kept.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Callable

import torch
from sklearn.metrics import roc_auc_score

from babyface.config import TrainConfig
from babyface.data.sources import AGE_CLASSES
from babyface.forward import predict_logits
from babyface.outputs import write_json
from babyface.run import WHO_FOLDER, WHO_RECORD, WhoRecord

log = logging.getLogger("babyface")

INFANT = AGE_CLASSES.index("infant")


def who_config(config: TrainConfig, out: Path) -> TrainConfig:
    """``config`` turned into the infant-vs-adult model's: labels by age, a few epochs, one model, nothing that only
    the emotion model needs (decision classes, relabelling, self-training, fine-tuning, the source adversary)."""
    data = config.data_options.replace(label_by="age", relabel="", min_votes=0)
    return config.replace(out=str(out), data_options=data.model_dump(), epochs=config.who_epochs, seeds="", decide_over=[],
                          unlabelled="", init="", freeze_stages=0, source_adversary="off", missing_classes="off",
                          class_balance="sampler", mixup=0.0, cutmix=0.0, early_stopping=0, overwrite=True,
                          warmup_epochs=min(config.warmup_epochs, max(config.who_epochs - 1, 0)),
                          model_args={**config.model_args, "contrast": "equalize"})


def fit_who(config: TrainConfig, run: Path, fit: Callable[..., Path]) -> Path:
    """Train (or finish training) RUN/who/ for a run with ``--adults``; a finished one is kept."""
    folder = Path(run) / WHO_FOLDER
    if (folder / WHO_RECORD).is_file():
        return folder
    aucs: dict[int, float] = {}

    def record_auc(model: torch.nn.Module, row: dict, data) -> None:
        aucs[row["epoch"]] = validation_auc(model, data)

    log.info("infant-vs-adult model: adults %s, %d epochs, into %s", config.data_options.adults, config.who_epochs, folder)
    resume = (folder / "checkpoint.pt").is_file()
    fit(who_config(config, folder), resume=resume, on_epoch=record_auc)
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    best = meta["metrics"]["best_epoch"]
    record = WhoRecord(adults=[n.strip() for n in config.data_options.adults.split(",") if n.strip()],
                       epochs=config.who_epochs, best_epoch=best, val_auc=aucs.get(best), val_acc=meta["metrics"]["val_acc"])
    write_json(folder / WHO_RECORD, record.model_dump())
    log.info("infant-vs-adult model: validation AUC %s (epoch %d)", "n/a" if record.val_auc is None else f"{record.val_auc:.4f}", best)
    return folder


def validation_auc(model: torch.nn.Module, data) -> float | None:
    """Infant-vs-adult AUC of ``model`` on the validation images (None without both kinds there)."""
    labels = data.val.labels.numpy() == INFANT
    if len(labels) == 0 or labels.all() or not labels.any():
        return None
    device = next(model.parameters()).device
    logits = predict_logits(model, data.val.images, data.mean, data.std, device, batch_size=256)
    return round(float(roc_auc_score(labels, torch.softmax(logits, 1)[:, INFANT].numpy())), 6)


def share_who(source: Path, runs: list[Path]) -> None:
    """Copy a finished RUN/who/ bundle (weights, model.json, who.json) into other run folders (the seeds, the
    ensemble), which then tell infants from adults with the same model."""
    for run in runs:
        target = Path(run) / WHO_FOLDER
        if target.resolve() == source.resolve():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "model.json", WHO_RECORD):
            shutil.copy2(source / name, target / name)


__all__ = ["INFANT", "fit_who", "share_who", "validation_auc", "who_config"]
