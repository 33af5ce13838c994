"""Our models compute the same functions as references written independently of them."""

import pytest
import torch
import torchvision
from torch import nn

from deepernets import models


class PaperBlock(nn.Module):
    """A basic block of He et al. 2016, §4.2: two 3×3 convolutions with batch norm; option A shortcut: identity,
    subsampled by 2 where the stage starts and zero-padded with the new channels (appended after the old ones, as
    fb.resnet.torch's shortcut type A concatenates zeros)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(planes)
        self.conv_b = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x[:, :, ::2, ::2] if self.stride == 2 else x
        if self.extra:
            zeros = shortcut.new_zeros(shortcut.shape[0], self.extra, *shortcut.shape[2:])
            shortcut = torch.cat([shortcut, zeros], 1)
        out = torch.relu(self.bn_a(self.conv_a(x)))
        return torch.relu(self.bn_b(self.conv_b(out)) + shortcut)


class PaperResNet(nn.Module):
    """3×3 conv of 16 + BN + ReLU; stages of n blocks with 16, 32, 64 channels (stride 2 at the first block of
    stages 2 and 3); global average pooling; a fully connected layer."""

    def __init__(self, n: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, in_planes = [], 16
        for planes in (16, 32, 64):
            for i in range(n):
                blocks.append(PaperBlock(in_planes, planes, 2 if i == 0 and planes != 16 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def randomize_batch_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Random affine parameters and running statistics, so eval-mode batch norm is no near-identity."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for tensor in (m.weight.data, m.bias.data, m.running_mean):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)


def copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, order: list[int]) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).data.copy_(getattr(source, name).data[order])


@pytest.mark.parametrize(("name", "n"), [("resnet20", 3), ("resnet32", 5)])
def test_cifar_resnet_equals_the_papers_option_a(name, n):
    """Copy our weights into the paper's network, block by block. Where the zero channels of a padded shortcut go
    is a convention (ours pads on both sides, the reference appends them), so the residual channels of stages 2
    and 3 come in another order: `order[j]` is our channel that the reference's channel j holds."""
    generator = torch.Generator().manual_seed(0)
    ours = models.build(name, 3, 10)
    randomize_batch_norms(ours, generator)
    reference = PaperResNet(n, 10)

    reference.stem[0].weight.data.copy_(ours.conv1.weight.data)
    copy_bn(reference.stem[1], ours.bn1, list(range(16)))
    ours_blocks = [b for stage in (ours.layer1, ours.layer2, ours.layer3) for b in stage]
    assert len(ours_blocks) == len(reference.blocks) == 3 * n
    order = list(range(16))
    for mine, theirs in zip(ours_blocks, reference.blocks, strict=True):
        planes = theirs.conv_b.out_channels
        pad = (planes - len(order)) // 2
        new_order = order
        if planes != len(order):  # old channels sit after `pad` zeros in ours, first in the reference
            new_order = [pad + c for c in order] + list(range(pad)) + list(range(pad + len(order), planes))
        theirs.conv_a.weight.data.copy_(mine.conv1.weight.data[:, order])
        copy_bn(theirs.bn_a, mine.bn1, list(range(planes)))
        theirs.conv_b.weight.data.copy_(mine.conv2.weight.data[new_order])
        copy_bn(theirs.bn_b, mine.bn2, new_order)
        order = new_order
    reference.fc.weight.data.copy_(ours.fc.weight.data[:, order])
    reference.fc.bias.data.copy_(ours.fc.bias.data)
    assert models.count_parameters(reference) == models.count_parameters(ours)

    x = torch.randn(4, 3, 32, 32, generator=generator)
    with torch.no_grad():
        expected = reference.eval()(x)
        assert torch.allclose(ours.eval()(x), expected, atol=1e-5, rtol=1e-4)
        assert expected.std() > 0.1  # logits that differ, not a degenerate match


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_resnet_equals_torchvision(name):
    generator = torch.Generator().manual_seed(0)
    theirs = getattr(torchvision.models, name)(num_classes=10)
    randomize_batch_norms(theirs, generator)
    ours = models.build(name, 3, 10)
    ours.load_state_dict(theirs.state_dict())  # the same keys and shapes: no mapping needed
    x = torch.randn(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        expected = theirs.eval()(x)
        assert torch.allclose(ours.eval()(x), expected, atol=1e-5, rtol=1e-4)
        assert expected.std() > 0.01
