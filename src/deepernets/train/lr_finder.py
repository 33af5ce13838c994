"""Exponential LR range test (Smith 2015): raise the LR each step from `start` to `end` and watch the loss.

A suggestion is only taken from the part of the curve where the loss has clearly fallen below its starting level,
up to its minimum (after that it diverges). When no point has clearly fallen (a flat curve that then explodes,
too few points, noise as large as the fall) the finder says why and falls back: to the valley point if the
requested rule's point is outside that region, else to a fixed LR for the optimizer.
"""

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from deepernets.config import LR_FINDER_MIN_STEPS, LRFinderSettings
from deepernets.data import Batches
from deepernets.train.device import Precision
from deepernets.train.optimizers import set_lr
from deepernets.train.step import grad_scaler, train_step

START_FRACTION = 0.1  # the first tenth of the points (at least 3) sets the starting level and its noise
MIN_FALL = 0.1  # "clearly fallen": at least 10% below the starting level...
NOISE_SIGMAS = 3.0  # ...and more than 3 standard deviations of the batch-to-batch loss at the start
SMOOTHING_FRACTION = 0.1  # moving-average window as a fraction of the points, so it suits any number of steps
STOP_FACTOR = 4.0  # stop once the smoothed loss is 4x its best so far: it has diverged
FALLBACK_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}  # the usual safe peaks, used when the curve says nothing


@dataclass
class Choice:
    """The LR to train at and how it was chosen."""

    lr: float
    picked_by: str  # the rule that gave `lr`: a suggestion's name, or "default" for FALLBACK_LR
    fallback: bool  # the requested rule could not be used
    warning: str | None  # one line saying why, when fallback


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed: centered moving average of raw_losses
    raw_losses: list[float] = field(default_factory=list)
    valley: float = math.nan
    steep: float = math.nan
    minimum_tenth: float = math.nan
    minimum: float = math.nan
    start_loss: float = math.nan  # the starting level the loss must clearly fall below
    threshold: float = math.nan  # the loss below which the curve counts as having fallen
    problem: str | None = None  # why there is no usable region, if there is none

    def choose(self, method: str, optimizer: str) -> Choice:
        """The `method` suggestion, or the documented fallback (valley, then the optimizer's default LR)."""
        wanted = getattr(self, method)
        if math.isfinite(wanted):
            return Choice(wanted, method, False, None)
        if self.problem is None and math.isfinite(self.valley):
            reason = f"the {method} point ({self.minimum / 10:.3g}) lies on the flat start of the curve"
            return Choice(self.valley, "valley", True, f"LR finder: {reason}; using the valley point {self.valley:.3g}")
        lr = FALLBACK_LR[optimizer]
        return Choice(lr, "default", True, f"LR finder: {self.problem}; using the {optimizer} default {lr:g}")

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
    start: float = LRFinderSettings.start_lr,
    end: float = LRFinderSettings.end_lr,
    steps: int = LRFinderSettings.steps,
    label_smoothing: float = 0.0,
) -> LRFinderResult:
    """Run the test with the loss and precision the run trains with (fp16 behind a gradient scaler, as training
    has it) and restore the model's and the optimizer's state afterwards."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    result = LRFinderResult()
    model.train()
    # The stopping rule watches an EMA with the same horizon as the moving average used afterwards.
    beta = 1 - 2 / (smoothing_window(steps) + 1)
    average, best = 0.0, math.inf
    stream = batches.forever()
    scaler = grad_scaler(precision)
    for step in range(steps):
        lr = start * (end / start) ** (step / max(1, steps - 1))
        set_lr(optimizer, lr)
        loss = train_step(model, optimizer, *next(stream), precision, scaler, label_smoothing)[0].item()
        if not math.isfinite(loss):
            break
        result.lrs.append(lr)
        result.raw_losses.append(loss)
        average = beta * average + (1 - beta) * loss
        smoothed = average / (1 - beta ** (step + 1))
        best = min(best, smoothed)
        if smoothed > STOP_FACTOR * best:
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    suggest(result)
    return result


def smoothing_window(points: int) -> int:
    """An odd window of about a tenth of the points: enough to tame batch noise, short enough to keep the shape."""
    return max(1, round(SMOOTHING_FRACTION * points)) // 2 * 2 + 1


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average (shorter at the ends). Unlike an EMA it does not shift the minimum to a higher LR."""
    half = window // 2
    sums = np.concatenate([[0.0], np.cumsum(values)])
    lo = np.clip(np.arange(len(values)) - half, 0, len(values))
    hi = np.clip(np.arange(len(values)) + half + 1, 0, len(values))
    return (sums[hi] - sums[lo]) / (hi - lo)


def suggest(result: LRFinderResult) -> None:
    """Smooth the raw losses, find the region where they have clearly fallen, and take the suggestions from it.

    valley: half-way down the longest stretch where the smoothed loss keeps falling (a cautious choice);
    steep: where it falls fastest; minimum: where it is lowest, the peak that Smith's one-cycle recipe takes;
    minimum_tenth: a tenth of that, if that is still inside the region. All are NaN when there is no region.
    """
    raw = np.asarray(result.raw_losses, dtype=np.float64)
    result.losses = moving_average(raw, smoothing_window(len(raw))).tolist()
    if len(raw) < LR_FINDER_MIN_STEPS:
        result.problem = f"only {len(raw)} points were recorded (at least {LR_FINDER_MIN_STEPS} are needed)"
        return
    lrs, losses = np.asarray(result.lrs), np.asarray(result.losses)
    head = raw[: max(3, round(START_FRACTION * len(raw)))]
    result.start_loss = float(np.median(head))
    result.threshold = result.start_loss - max(MIN_FALL * result.start_loss, NOISE_SIGMAS * float(np.std(head)))
    lowest = int(np.argmin(losses))
    if losses[lowest] >= result.threshold:
        result.problem = (
            f"the loss never clearly fell below its start ({result.start_loss:.3g}; lowest {losses[lowest]:.3g} "
            f"at LR {lrs[lowest]:.2g}, needed < {result.threshold:.3g})"
        )
        return
    first = int(np.argmax(losses < result.threshold))  # the region is first..lowest: fallen and not yet diverged
    region = slice(first, lowest + 1)
    result.minimum = float(lrs[lowest])
    if result.minimum / 10 >= lrs[first]:
        result.minimum_tenth = result.minimum / 10
    slopes = np.gradient(losses, np.log(lrs))  # at least LR_FINDER_MIN_STEPS points here
    result.steep = float(lrs[first + int(np.argmin(slopes[region]))])
    start, end = longest_descent(losses[region])
    result.valley = float(lrs[first + start + (end - start) // 2])


def longest_descent(losses: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest stretch of consecutive points where the loss keeps falling."""
    best, start = (0, 0), 0
    for i in range(1, len(losses)):
        if losses[i] >= losses[i - 1]:
            start = i
        elif i - start > best[1] - best[0]:
            best = (start, i)
    return best
