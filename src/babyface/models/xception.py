"""A mini-Xception for small faces: depthwise-separable convolutions with residual shortcuts.

After Arriaga et al. (2017), the FER2013 model of the ``fer`` package: a two-conv stem (full resolution, or half
with ``stem_stride=2``), then four blocks that each double the width and halve the side (two separable convs and a
3×3/2 max-pool, beside a 1×1/2 conv shortcut), global average pooling and a linear classifier. A small fraction of
ResNet-18's FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from babyface.errors import BabyfaceError
from babyface.models.registry import init_conv_bn, register_model, validate_drop_rate, validate_image_size

NUM_BLOCKS = 4
MAX_WIDTH = 256
STEM_STRIDES = (1, 2)


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv (padding 1) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def separable_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Depthwise 3×3 conv then pointwise 1×1 conv, both without bias (a BatchNorm follows)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
    )


class XceptionBlock(nn.Module):
    """sepconv-BN-ReLU-sepconv-BN-maxpool(3, 2) added to a 1×1/2 conv-BN shortcut: doubles width, halves the side."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            separable_conv(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            separable_conv(out_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        # a 1×1/2 conv, written as every second pixel (a 1×1/2 max-pool) through a 1×1 conv, the same numbers:
        # PyTorch 2.14's channels-last 1×1/2 conv crashes the process on 8-channel 48×48 inputs (width 8)
        self.shortcut = nn.Sequential(
            nn.MaxPool2d(kernel_size=1, stride=2),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class MiniXception(nn.Module):
    """Stem (two 3×3 convs of ``width`` channels) → four XceptionBlocks (2, 4, 8, 16 × width) → average pool → fc.

    Accepts any input size ≥ 32; ``image_size`` is only validated and recorded.
    """

    def __init__(self, num_classes: int, image_size: int = 48, width: int = 8, stem_stride: int = 1,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        validate_image_size("xception-mini", image_size)
        validate_drop_rate("xception-mini", drop_rate)
        validate_width(width)
        if stem_stride not in STEM_STRIDES:
            raise BabyfaceError(f"xception-mini: stem_stride must be 1 or 2, got {stem_stride!r}")
        self.image_size = image_size
        self.stem = nn.Sequential(conv_bn_relu(3, width, stem_stride), conv_bn_relu(width, width))
        widths = [width * 2**i for i in range(NUM_BLOCKS + 1)]
        self.blocks = nn.Sequential(*(XceptionBlock(c_in, c_out) for c_in, c_out in zip(widths, widths[1:])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_conv_bn(self)

    def stages(self) -> list[nn.Module]:
        """Feature stages in order (stem, then the four blocks), for ``--freeze-stages``."""
        return [self.stem, *self.blocks]

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last block (for Grad-CAM hooks)."""
        return self.blocks[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def validate_width(width: int) -> None:
    """Raise BabyfaceError unless width is an integer in [1, MAX_WIDTH]."""
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= MAX_WIDTH:
        raise BabyfaceError(f"xception-mini: width must be an integer from 1 to {MAX_WIDTH}, got {width!r}")


@register_model("xception-mini")
def xception_mini(num_classes: int, image_size: int = 48, width: int = 8, stem_stride: int = 1,
                  drop_rate: float = 0.0) -> MiniXception:
    """Mini-Xception for 48-px faces: separable convs + residual shortcuts, widths 2-16 × width (8 as fer's).

    ``width`` is the stem's channel count (the blocks have 2, 4, 8 and 16 times as many); ``stem_stride`` 2 halves the
    side in the first conv (fer's model keeps full resolution: 1), which makes a CPU step 4-6 times faster;
    ``drop_rate`` is dropout before fc.
    """
    return MiniXception(num_classes, image_size, width, stem_stride, drop_rate)
