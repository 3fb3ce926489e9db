"""Self-training on unlabelled faces (``train --unlabelled DIR``): learn from the infant domain without its labels.

A teacher is trained on the labelled data as usual (OUT/self-training/teacher). It labels every unlabelled face it is
sure of: the face and its mirror image get the same answer, with a mean calibrated probability of at least
``--pseudo-threshold``. Those faces become one more source (OUT/self-training/pseudo/<class>/, links to the files, and
pseudo_labels.csv with every face's answer), and the model is trained again from scratch on the labelled data plus
them, into OUT ("noisy student" without the noise: the student sees the augmentation the teacher's labels did not).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from babyface.config import TrainConfig
from babyface.data.decoded import decode_images
from babyface.data.images import display_path
from babyface.data.layout import link_or_copy
from babyface.errors import DataError
from babyface.faces.framing import Framing
from babyface.inference.classifier import Classifier, collect_inputs
from babyface.outputs import prepare_output_dir, write_csv

log = logging.getLogger("babyface")
SELF_TRAINING_DIR = "self-training"


def fit_self_training(config: TrainConfig, fit) -> Path:
    """Teacher, pseudo-labels, student; ``fit`` trains one run (babyface.training.fit.fit)."""
    collect_inputs([config.unlabelled])  # an empty or missing folder fails now, not after the teacher's training
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    work = out / SELF_TRAINING_DIR
    teacher = fit(config.replace(unlabelled="", out=str(work / "teacher"), overwrite=True))
    pseudo = pseudo_label(teacher, Path(config.unlabelled), work / "pseudo", config.pseudo_threshold, config.device)
    log.info("self-training: the student trains on the labelled data and %s", display_path(pseudo))
    return fit(config.replace(unlabelled="", sources=[*config.sources, str(pseudo)], out=str(out), overwrite=True))


def pseudo_label(teacher: Path, unlabelled: Path, out: Path, threshold: float, device: str = "auto") -> Path:
    """OUT/<class>/ links to the faces of ``unlabelled`` the teacher is sure of, and OUT/pseudo_labels.csv."""
    files = collect_inputs([unlabelled])
    classifier = Classifier(teacher, device=device, backend="torch", tta="flip", framing=Framing(mode="whole"))
    decoded = decode_images(files, None, classifier.image_size, progress=False, desc="decode unlabelled")  # skips logged
    names = decoded.paths
    if not names:
        raise DataError(f"{display_path(unlabelled)}: none of its {len(files)} image(s) could be decoded; fix or replace them")
    probs = torch.stack([classifier.calibrate(view) for view in classifier.view_logits(decoded.images)])  # the face, its mirror
    mean, agree = probs.mean(0), probs[0].argmax(1) == probs[1].argmax(1)
    confidence, label = mean.max(1)
    kept = agree & (confidence >= threshold)
    if not bool(kept.any()):
        raise DataError(f"{display_path(unlabelled)}: the teacher is sure (p >= {threshold}) of none of its {len(names)} "
                        "faces; lower --pseudo-threshold or train without --unlabelled")
    prepare_output_dir(out, overwrite=True)
    classes = classifier.classes
    rows = []
    for path, conf, cls, keep, same in zip(names, confidence.tolist(), label.tolist(), kept.tolist(), agree.tolist()):
        if keep:
            link_or_copy(path, out / classes[cls] / _unique_name(path, unlabelled))
        rows.append([display_path(path), classes[cls], f"{conf:.4f}", int(same), int(keep)])
    write_csv(out.parent / "pseudo_labels.csv", ["file", "label", "confidence", "mirror_agrees", "kept"], rows)
    counts = {c: sum(1 for r in rows if r[4] and r[1] == c) for c in classes}
    log.info("self-training: %d of %d unlabelled faces pseudo-labelled (p >= %g, mirror agrees): %s", int(kept.sum()),
             len(names), threshold, ", ".join(f"{c} {n}" for c, n in counts.items()))
    return out


def _unique_name(path: Path, root: Path) -> str:
    """The file's path under ``root`` flattened to one name, so two sub-folders' files cannot collide."""
    return os.path.relpath(path, root).replace(os.sep, "__")
