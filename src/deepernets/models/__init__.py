"""Model registry: `names()`, `build(name, in_channels, num_classes, **options)`, and model statistics."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deepernets.models import resnet, resnet_cifar, vgg  # noqa: F401  (registers the models)
from deepernets.models.registry import build, check, names, options

__all__ = ["build", "check", "names", "options", "count_parameters", "flops_per_image"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(
    name: str, in_channels: int = 3, num_classes: int = 10, size: int = 32, **model_options: object
) -> int:
    """Forward FLOPs (2 per multiply-add) for one image, counted on the meta device so nothing is computed."""
    with torch.device("meta"):
        model = build(name, in_channels, num_classes, **model_options).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(1, in_channels, size, size))
    return counter.get_total_flops()
