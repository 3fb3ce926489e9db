"""The reference project's per-image pipeline, kept as a yardstick for babyface's batched one.

PIL open and torchvision transforms at full resolution in ``__getitem__``, one image at a time
(DataLoader, ``num_workers=0``): ``benchmarks/train_speed.py`` times it against ``train_one_epoch``,
and a guard-rail test checks that both pipelines train models that are equally good.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from babyface.data.scan import Sample


def reference_transform(size: int, mean: Sequence[float], std: Sequence[float], augment: bool = True) -> transforms.Compose:
    """The reference's training transform (``augment``) or its evaluation one (resize and normalise only)."""
    steps = [transforms.Resize((size, size))]
    if augment:
        steps += [
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(15),
            transforms.RandomAffine(0, shear=10, scale=(0.8, 1.2)),
            transforms.ColorJitter(0.2, 0.2, 0.2),
        ]
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])


class NaiveFolder(Dataset):
    """Decode and transform one full-size image per item, as the reference does."""

    def __init__(self, samples: Sequence[Sample], mean: Sequence[float], std: Sequence[float], size: int = 64, augment: bool = True):
        self.samples = list(samples)
        self.transform = reference_transform(size, mean, std, augment)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        with Image.open(sample.path) as img:
            return self.transform(img.convert("RGB")), sample.label


def naive_epoch(model: nn.Module, loader: DataLoader, optimizer) -> float:
    """One training epoch over ``loader``; returns its seconds."""
    model.train()
    start = time.perf_counter()
    for images, labels in loader:
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start
