"""ResNet-18/34 (BasicBlock) from scratch, with an optional small stem for low-resolution faces."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from babyface.errors import BabyfaceError
from babyface.models.registry import init_conv_bn, register_model, validate_drop_rate, validate_image_size

WIDTHS = (64, 128, 256, 512)
STEMS = ("imagenet", "small")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = self._projection(in_channels, out_channels, stride)

    @staticmethod
    def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


def make_stem(stem: str) -> nn.Sequential:
    """``imagenet``: 7×7/2 conv + BN + ReLU + 3×3/2 max-pool (÷4); ``small``: 3×3/1 conv + BN + ReLU."""
    if stem not in STEMS:
        raise BabyfaceError(f"resnet: unknown stem {stem!r}; available: {', '.join(STEMS)}")
    if stem == "small":
        conv = conv3x3(3, WIDTHS[0])
    else:
        conv = nn.Conv2d(3, WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False)
    layers = OrderedDict(conv=conv, bn=nn.BatchNorm2d(WIDTHS[0]), relu=nn.ReLU(inplace=True))
    if stem == "imagenet":
        layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return nn.Sequential(layers)


def make_stage(in_channels: int, out_channels: int, num_blocks: int, stride: int) -> nn.Sequential:
    """``num_blocks`` BasicBlocks; the first one changes width and applies ``stride``."""
    blocks = [BasicBlock(in_channels, out_channels, stride)]
    blocks += [BasicBlock(out_channels, out_channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    """ResNet with BasicBlocks (widths 64/128/256/512), adaptive average pool and a linear head.

    Accepts any input size ≥ 32; ``image_size`` is only validated and recorded.
    """

    def __init__(
        self,
        block_counts: tuple[int, int, int, int],
        num_classes: int,
        image_size: int = 64,
        stem: str = "imagenet",
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        validate_image_size("resnet", image_size)
        validate_drop_rate("resnet", drop_rate)
        if not isinstance(zero_init_residual, bool):
            raise BabyfaceError(f"resnet: zero_init_residual must be a bool, got {zero_init_residual!r}")
        self.image_size = image_size
        self.stem = make_stem(stem)
        in_widths = (WIDTHS[0], *WIDTHS[:-1])
        stages = zip(in_widths, WIDTHS, block_counts, (1, 2, 2, 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            make_stage(c_in, c_out, n, stride) for c_in, c_out, n, stride in stages
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """Kaiming-normal (fan_out, relu) convs, BN γ=1 β=0; optionally γ=0 in each block's last BN."""
        init_conv_bn(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def stages(self) -> list[nn.Module]:
        """Feature stages in order (stem, then the four residual stages), for ``--freeze-stages``."""
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last residual stage (for Grad-CAM hooks)."""
        return self.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


@register_model("resnet18")
def resnet18(
    num_classes: int,
    image_size: int = 64,
    stem: str = "imagenet",
    zero_init_residual: bool = False,
    drop_rate: float = 0.0,
) -> ResNet:
    """ResNet-18 (BasicBlock [2, 2, 2, 2]); stem "imagenet" (7×7/2 + pool) or "small" (3×3/1).

    Options: ``zero_init_residual`` zero-inits each block's last BN γ; ``drop_rate`` is dropout before fc.
    """
    return ResNet((2, 2, 2, 2), num_classes, image_size, stem, zero_init_residual, drop_rate)


@register_model("resnet34")
def resnet34(
    num_classes: int,
    image_size: int = 64,
    stem: str = "imagenet",
    zero_init_residual: bool = False,
    drop_rate: float = 0.0,
) -> ResNet:
    """ResNet-34 (BasicBlock [3, 4, 6, 3]); stem "imagenet" (7×7/2 + pool) or "small" (3×3/1).

    Options: ``zero_init_residual`` zero-inits each block's last BN γ; ``drop_rate`` is dropout before fc.
    """
    return ResNet((3, 4, 6, 3), num_classes, image_size, stem, zero_init_residual, drop_rate)
