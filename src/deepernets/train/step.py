"""One optimization step, shared by the training loop and the LR finder."""

import torch
import torch.nn.functional as F
from torch import nn

from deepernets.train.device import Precision


def grad_scaler(precision: Precision) -> torch.amp.GradScaler | None:
    """The gradient scaler fp16 needs (its small gradients would flush to zero unscaled); None otherwise."""
    return torch.amp.GradScaler("cuda") if precision.name == "fp16" else None


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: Precision,
    scaler: torch.amp.GradScaler | None = None,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward and step; returns the detached mean loss and the logits."""
    with precision.autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), logits.detach()
