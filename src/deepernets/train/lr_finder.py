"""Exponential LR range test (Smith 2015): raise the LR each step from `start` to `end` and watch the loss."""

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from deepernets.data import Batches
from deepernets.train.device import Precision
from deepernets.train.optimizers import set_lr
from deepernets.train.step import train_step

MIN_POINTS = 20  # fewer points than this make the suggestion unreliable


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed (bias-corrected EMA)
    raw_losses: list[float] = field(default_factory=list)
    valley: float = math.nan
    steep: float = math.nan
    minimum_tenth: float = math.nan
    minimum: float = math.nan

    def pick(self, method: str = "valley") -> float:
        """One of the suggestions: valley (the default), steep, minimum_tenth or minimum."""
        return getattr(self, method)

    @property
    def too_few_points(self) -> bool:
        return len(self.lrs) < MIN_POINTS

    def rows(self) -> list[dict[str, float]]:
        return [
            {"step": i, "lr": lr, "loss": raw, "smoothed_loss": smooth}
            for i, (lr, raw, smooth) in enumerate(zip(self.lrs, self.raw_losses, self.losses, strict=True))
        ]


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    precision: Precision,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.98,
    stop_factor: float = 4.0,
) -> LRFinderResult:
    """Run the test and restore the model's and the optimizer's state afterwards."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    result = LRFinderResult()
    model.train()
    average, best = 0.0, math.inf
    stream = batches.forever()
    for step in range(steps):
        lr = start * (end / start) ** (step / max(1, steps - 1))
        set_lr(optimizer, lr)
        loss = train_step(model, optimizer, *next(stream), precision)[0].item()
        if not math.isfinite(loss):
            break
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing ** (step + 1))
        result.lrs.append(lr)
        result.raw_losses.append(loss)
        result.losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > stop_factor * best:
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    suggest(result)
    return result


def suggest(result: LRFinderResult) -> None:
    """Fill in the suggestions from the recorded curve.

    valley: half-way down the longest stretch where the smoothed loss keeps falling (a cautious choice);
    steep: where the smoothed loss falls fastest; minimum: where it is lowest, the peak that Smith's one-cycle
    recipe takes; minimum_tenth: a tenth of that.
    """
    if len(result.lrs) < 2:
        return
    lrs, losses = np.asarray(result.lrs), np.asarray(result.losses)
    result.minimum = float(lrs[np.argmin(losses)])
    result.minimum_tenth = result.minimum / 10
    result.steep = float(lrs[np.argmin(np.gradient(losses, np.log(lrs)))])
    start, end = longest_descent(losses)
    result.valley = float(lrs[start + (end - start) // 2])


def longest_descent(losses: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest stretch of consecutive points where the loss keeps falling."""
    best, start = (0, 0), 0
    for i in range(1, len(losses)):
        if losses[i] >= losses[i - 1]:
            start = i
        elif i - start > best[1] - best[0]:
            best = (start, i)
    return best
