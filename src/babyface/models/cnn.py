"""The reference CNN: four conv blocks, a shortcut from the input, and a four-layer MLP head."""

from __future__ import annotations

import torch
from torch import nn

from babyface.models.registry import register_model, validate_drop_rate, validate_image_size

WIDTHS = (32, 64, 128, 256)
HIDDEN = (1024, 512, 128)
DOWNSAMPLE = 2 ** len(WIDTHS)  # four 2×2 max-pools


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv (padding 1) → BatchNorm → ReLU → 2×2 max-pool: halves the spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def mlp_head(in_features: int, num_classes: int, drop_rate: float) -> nn.Sequential:
    """Flatten → Linear layers through HIDDEN, with ReLU and dropout between them."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in HIDDEN:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(drop_rate)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


class ReferenceCNN(nn.Module):
    """Four conv blocks (3→32→64→128→256) plus a shortcut (MaxPool2d(16) + 1×1 conv 3→256) from the
    input, added to the last block's output, then an MLP head 256·(s/16)²→1024→512→128→classes.

    Takes only square ``image_size``×``image_size`` inputs, where image_size is a multiple of 16 and
    ≥ 32 (the head's input size depends on it: 4096 at 64, 2304 at 48).
    """

    def __init__(self, num_classes: int, image_size: int = 64, drop_rate: float = 0.5) -> None:
        super().__init__()
        validate_image_size("cnn", image_size, multiple_of=DOWNSAMPLE)
        validate_drop_rate("cnn", drop_rate)
        self.image_size = image_size
        channels = (3, *WIDTHS)
        self.features = nn.Sequential(*(conv_block(c_in, c_out) for c_in, c_out in zip(channels, WIDTHS)))
        self.shortcut = nn.Sequential(nn.MaxPool2d(DOWNSAMPLE), nn.Conv2d(3, WIDTHS[-1], kernel_size=1))
        side = image_size // DOWNSAMPLE
        self.classifier = mlp_head(WIDTHS[-1] * side * side, num_classes, drop_rate)

    def stages(self) -> list[nn.Module]:
        """The four conv blocks in order, for ``--freeze-stages`` (the input shortcut stays trainable)."""
        return list(self.features)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last conv block (for Grad-CAM hooks)."""
        return self.features[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_size(x)
        return self.classifier(self.features(x) + self.shortcut(x))

    def _check_input_size(self, x: torch.Tensor) -> None:
        height, width = x.shape[-2:]
        size = self.image_size
        if (height, width) != (size, size):
            raise ValueError(
                f"cnn was built for {size}×{size} inputs, got {height}×{width}; "
                f"resize images to {size} or rebuild with image_size={height}"
            )


@register_model("cnn")
def cnn(num_classes: int, image_size: int = 64, drop_rate: float = 0.5) -> ReferenceCNN:
    """Reference CNN: 4 conv blocks + input shortcut + MLP head; image_size a multiple of 16, ≥ 32.

    ``drop_rate`` is the dropout between the head's Linear layers (0.5 in the reference).
    """
    return ReferenceCNN(num_classes, image_size, drop_rate)
