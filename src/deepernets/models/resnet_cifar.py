"""The CIFAR ResNets of He et al. (2016, section 4.2): depth 6n+2, stages of 16/32/64 channels.

Shortcut "A" is the paper's parameter-free one (subsample, then zero-pad the new channels);
shortcut "B" is a 1×1 projection with batch norm.
"""

import torch
import torch.nn.functional as F
from torch import nn

from deepernets.models.registry import register
from deepernets.models.resnet import BasicBlock, conv1x1, conv3x3


class PadShortcut(nn.Module):
    """Option A: take every other pixel and zero-pad the channels up to `planes`."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        self.pad = (planes - in_planes) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, in_channels: int, num_classes: int, shortcut: str) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"unknown shortcut '{shortcut}'; choose A (zero-padding) or B (projection)")
        blocks = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.in_planes = 16
        self.layer1 = self._make_layer(16, blocks, 1, shortcut)
        self.layer2 = self._make_layer(32, blocks, 2, shortcut)
        self.layer3 = self._make_layer(64, blocks, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the classifier keeps PyTorch's default: small logits at the start
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
        """The first block of a stage changes size through the chosen shortcut; the rest keep it."""
        downsample: nn.Module | None = None
        if stride != 1 or self.in_planes != planes:
            if shortcut == "A":
                downsample = PadShortcut(self.in_planes, planes)
            else:
                downsample = nn.Sequential(conv1x1(self.in_planes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


@register
def resnet20(in_channels: int = 3, num_classes: int = 10, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(20, in_channels, num_classes, shortcut)


@register
def resnet32(in_channels: int = 3, num_classes: int = 10, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(32, in_channels, num_classes, shortcut)


@register
def resnet44(in_channels: int = 3, num_classes: int = 10, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(44, in_channels, num_classes, shortcut)


@register
def resnet56(in_channels: int = 3, num_classes: int = 10, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(56, in_channels, num_classes, shortcut)


@register
def resnet110(in_channels: int = 3, num_classes: int = 10, shortcut: str = "A") -> CifarResNet:
    return CifarResNet(110, in_channels, num_classes, shortcut)
