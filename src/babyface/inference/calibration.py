"""Calibration: expected calibration error, reliability bins, temperature scaling.

A temperature T > 1 softens over-confident probabilities (softmax(logits / T)); it never changes which
class wins, so accuracy and macro-F1 are unaffected. T is fitted on the validation split after training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

ECE_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)


def calibrated_probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / T): the probabilities that evaluate and predict report. Logits V×N×C (V views of each
    image, test-time augmentation) give the mean over the views of their calibrated probabilities, N×C."""
    probs = torch.softmax(logits / temperature, dim=-1)
    return probs.mean(0) if probs.dim() == 3 else probs


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-width bins of top-class confidence ((0, 1/n], …, ((n-1)/n, 1]): mean confidence, accuracy, count."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=int)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    which = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    safe = np.maximum(count, 1)
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "confidence": np.bincount(which, weights=confidence, minlength=n_bins) / safe,
        "accuracy": np.bincount(which, weights=correct, minlength=n_bins) / safe,
        "count": count,
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Σ_bins (share of images in the bin) × |accuracy − mean confidence| (Guo et al. 2017)."""
    return ece_from_bins(reliability_bins(probs, labels, n_bins))


def ece_from_bins(bins: dict[str, np.ndarray]) -> float:
    share = bins["count"] / max(int(bins["count"].sum()), 1)
    return float(np.sum(share * np.abs(bins["accuracy"] - bins["confidence"])))


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean −log p(true class); logits V×N×C (test-time augmentation views) as in ``calibrated_probabilities``."""
    if logits.dim() == 3:
        return float(F.nll_loss(calibrated_probabilities(logits.double(), temperature).log(), labels))
    return float(F.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T that minimises validation NLL (LBFGS on log T, clamped to TEMPERATURE_BOUNDS); 1.0 without data
    or when the fit does not improve on T = 1."""
    if len(labels) == 0:
        return 1.0
    logits, labels = logits.detach().double(), labels.long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = min(max(float(log_t.detach().exp()), TEMPERATURE_BOUNDS[0]), TEMPERATURE_BOUNDS[1])
    if not math.isfinite(temperature) or negative_log_likelihood(logits, labels, temperature) >= negative_log_likelihood(logits, labels):
        return 1.0
    return round(temperature, 6)


def calibration_summary(logits: torch.Tensor, labels: torch.Tensor, temperature: float, n_bins: int = ECE_BINS) -> dict:
    """NLL and ECE at T = 1 and at ``temperature`` on the same logits."""
    before = calibrated_probabilities(logits).numpy()
    after = calibrated_probabilities(logits, temperature).numpy()
    labels_np = labels.numpy()
    return {
        "temperature": temperature,
        "bins": n_bins,
        "nll_before": round(negative_log_likelihood(logits, labels), 6),
        "nll_after": round(negative_log_likelihood(logits, labels, temperature), 6),
        "ece_before": round(expected_calibration_error(before, labels_np, n_bins), 6),
        "ece_after": round(expected_calibration_error(after, labels_np, n_bins), 6),
    }
