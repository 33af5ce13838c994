"""VGG (Simonyan & Zisserman) for inputs of 32×32 or more: five 2×2 poolings leave 512×1×1 features at 32×32, and
an adaptive average pooling brings larger maps down to 1×1 for the head (at 32×32 it is the identity).

Two heads: "compact" (512-512-512-classes, as chenyaofo/pytorch-cifar-models) and "classic" (the study's
4096-4096 head with dropout).
"""

import torch
from torch import nn

from deepernets.models.registry import register

# Channels per conv layer; "M" is a 2×2 max-pool.
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}
HEAD_WIDTHS = {"compact": 512, "classic": 4096}


class VGG(nn.Module):
    def __init__(self, depth: int, batch_norm: bool, in_channels: int, num_classes: int, head: str) -> None:
        super().__init__()
        if head not in HEAD_WIDTHS:
            raise ValueError(f"unknown head '{head}'; choose one of: {', '.join(HEAD_WIDTHS)}")
        self.features = make_features(CONFIGS[depth], in_channels, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # inputs of 64 pixels and more leave maps larger than 1×1
        width = HEAD_WIDTHS[head]
        self.classifier = nn.Sequential(
            nn.Linear(512, width),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(width, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def make_features(config: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


@register
def vgg11(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(11, False, in_channels, num_classes, head)


@register
def vgg11_bn(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(11, True, in_channels, num_classes, head)


@register
def vgg13(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(13, False, in_channels, num_classes, head)


@register
def vgg13_bn(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(13, True, in_channels, num_classes, head)


@register
def vgg16(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(16, False, in_channels, num_classes, head)


@register
def vgg16_bn(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(16, True, in_channels, num_classes, head)


@register
def vgg19(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(19, False, in_channels, num_classes, head)


@register
def vgg19_bn(in_channels: int = 3, num_classes: int = 10, head: str = "compact") -> VGG:
    return VGG(19, True, in_channels, num_classes, head)
