"""Running a model over image tensors: device choice, normalisation, batched inference."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from babyface.config import CHOICES
from babyface.errors import BabyfaceError
from babyface.hardware import Precision

FP32 = Precision("fp32")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; an explicit device that is missing is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BabyfaceError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BabyfaceError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return device


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or 0..1 float) N×3×H×W → normalised float32."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def index_batches(n: int, batch_size: int, order: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Batches of indices; a trailing batch of one is merged into the one before (BatchNorm needs ≥ 2 in training)."""
    order = torch.arange(n) if order is None else order
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        yield order[start:end]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    batch_size: int = 128,
    precision: Precision = FP32,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits (N×C float32, on CPU) for uint8 images N×3×H×W, in eval mode, computed in ``precision`` (autocast)."""
    if model.training:  # walking every module costs a millisecond a call: video classifies a few faces at a time
        model.eval()
    outputs = []
    for index in index_batches(len(images), batch_size):
        batch = normalise(images[index].to(device, non_blocking=True), mean, std)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with precision.autocast(device):
            outputs.append(model(batch).float().cpu())
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def tta_views(images: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The images N×3×H×W as test-time augmentation shows them to the model: as they are, with 'flip' also mirrored."""
    if tta not in CHOICES["tta"]:
        raise BabyfaceError(f"--tta {tta!r}: choose one of {', '.join(CHOICES['tta'])}")
    return [images] if tta == "none" else [images, images.flip(-1)]


def logits_with_tta(logits: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tta: str) -> torch.Tensor:
    """``logits(images)`` (N×C) without TTA; with it V×N×C, one slice per view, which
    ``calibration.calibrated_probabilities`` turns into the mean of the views' calibrated probabilities."""
    views = [logits(view) for view in tta_views(images, tta)]
    return views[0] if len(views) == 1 else torch.stack(views)
