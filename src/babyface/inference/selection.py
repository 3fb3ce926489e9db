"""Which back end serves a run: every candidate this hardware offers is measured at start-up, and the fastest whose
decisions agree with PyTorch fp32 on the run's own validation images (real faces, not random pixels) is kept.

Candidates on a CPU: PyTorch fp32; PyTorch bf16 where the CPU computes bf16 natively; onnxruntime fp32 (checked
against PyTorch to 1e-4 in the logits); onnxruntime int8, statically quantised with ranges calibrated on the
validation images (fast where the CPU has VNNI). bf16 and int8 change the arithmetic, so they qualify only by
measured agreement: without validation images to measure on, they are not tried.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from babyface.errors import BabyfaceError
from babyface.hardware import choose_precision, cpu_info
from babyface.inference.classifier import Classifier
from babyface.inference.export import INT8_AGREEMENT, export_onnx, validation_images

log = logging.getLogger("babyface")

TIMING_BATCH = 8  # what the micro-batcher hands the classifier with 8 clients
TIMING_REPEATS = 7
MIN_AGREEMENT = INT8_AGREEMENT  # bf16 and int8 must give fp32's decision on 99% of the validation images
UNJUDGED = "not tried: the run's validation images are not available to measure its agreement on"


@dataclass
class Candidate:
    name: str  # "torch fp32", "onnx int8", ...
    classifier: Classifier | None = None
    ms_per_batch: float | None = None
    agreement: float | None = None  # share of validation images given the same decision as PyTorch fp32
    note: str = ""  # why it was not usable

    @property
    def usable(self) -> bool:
        return self.classifier is not None and not self.note

    def to_dict(self) -> dict:
        return {"backend": self.name, "ms_per_batch": self.ms_per_batch, "agreement": self.agreement,
                "note": self.note}


def choose_serving_classifier(run: str, scratch: Path, make: Callable[..., Classifier], precision: str = "auto",
                              onnx: bool = True) -> tuple[Classifier, list[Candidate]]:
    """The fastest usable candidate, made by ``make(backend=..., precision=..., onnx_file=...)``, and every candidate
    measured (for the log and /model). Off the CPU there is nothing to choose: PyTorch in ``precision``."""
    reference = make(backend="torch", precision="fp32")
    if reference.device.type != "cpu":
        return make(backend="torch", precision=precision), []
    images = validation_images(run, reference.image_size)
    candidates = [Candidate("torch fp32", reference)]
    if choose_precision(precision, reference.device, warn=False).name == "bf16":
        candidates.append(_judged(Candidate("torch bf16"), images, lambda: make(backend="torch", precision="bf16")))
    if onnx:
        candidates.append(_onnx_candidate(run, scratch / "model.onnx", None, make))
        if precision == "auto":
            candidates.append(_onnx_candidate(run, scratch / "model.int8.onnx", images, make) if images is not None
                              else Candidate("onnx int8", note=UNJUDGED))
    probe = images[:TIMING_BATCH] if images is not None else _probe_images(reference.image_size)
    expected = reference.probabilities(images).argmax(1) if images is not None else None
    for candidate in candidates:
        _measure(candidate, probe, images, expected, required=None if candidate is candidates[0] else MIN_AGREEMENT)
    usable = [c for c in candidates if c.usable]
    chosen = min(usable, key=lambda c: c.ms_per_batch)
    _log_choice(candidates, chosen, 0 if images is None else len(images))
    return chosen.classifier, candidates


def _judged(candidate: Candidate, images: torch.Tensor | None, build: Callable[[], Classifier]) -> Candidate:
    """A candidate that changes the arithmetic: built only when there are real images to judge it on."""
    if images is None:
        candidate.note = UNJUDGED
        return candidate
    try:
        candidate.classifier = build()
    except BabyfaceError as exc:
        candidate.note = str(exc)
    return candidate


def _onnx_candidate(run: str, out: Path, calibration: torch.Tensor | None, make: Callable[..., Classifier]) -> Candidate:
    name = "onnx int8" if calibration is not None else "onnx fp32"
    try:
        export_onnx(run, out, calibration, calibration, parity_images=16)
        return Candidate(name, make(backend="onnx", onnx_file=str(out)))
    except BabyfaceError as exc:
        log.warning("WARNING: %s not considered: %s", name, exc)
        return Candidate(name, note=str(exc))


def _probe_images(size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (TIMING_BATCH, 3, size, size), generator=generator, dtype=torch.uint8)


def _measure(candidate: Candidate, probe: torch.Tensor, images: torch.Tensor | None, expected: torch.Tensor | None,
             required: float | None) -> None:
    """Best-of-TIMING_REPEATS milliseconds for one batch, and the share of decisions it shares with fp32 (at least
    ``required`` to be usable)."""
    if candidate.classifier is None:
        return
    classifier = candidate.classifier
    if expected is not None:
        candidate.agreement = float((classifier.probabilities(images).argmax(1) == expected).float().mean())
        if required is not None and candidate.agreement < required and not candidate.note:
            candidate.note = (f"agrees with fp32 on {candidate.agreement:.1%} of {len(expected)} validation images "
                              f"(< {required:.0%}): not used")
    classifier.probabilities(probe)  # warm-up
    times = []
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        classifier.probabilities(probe)
        times.append(time.perf_counter() - start)
    candidate.ms_per_batch = round(min(times) * 1e3, 3)


def _log_choice(candidates: list[Candidate], chosen: Candidate, judged_on: int) -> None:
    where = f"{judged_on} validation images" if judged_on else "no validation images (bf16 and int8 not tried)"
    log.info("back ends measured on %s, %d-image batches (%s):", where, TIMING_BATCH, cpu_info().line())
    for c in candidates:
        speed = f"{c.ms_per_batch:.1f} ms" if c.ms_per_batch is not None else "-"
        agreement = f", agreement {c.agreement:.1%}" if c.agreement is not None else ""
        log.info("  %-10s %s%s%s", c.name, speed, agreement, f" - {c.note}" if c.note else "")
    log.info("serving %s", chosen.name)
