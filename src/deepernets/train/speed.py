"""Training images/s over a few real steps: the study's time estimates and the benchmarks time steps this one way."""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from deepernets.config import RunConfig
from deepernets.train.device import Precision
from deepernets.train.optimizers import build_optimizer
from deepernets.train.setup import Parts
from deepernets.train.step import train_step

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Timing:
    images_per_s: float  # over the timed steps, drawing their batches included
    warmup_s: float  # the untimed warm-up steps (compiling, when compiled)


def time_steps(
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Iterator[Batch],
    steps: int,
    warmup: int,
    device: torch.device,
    timed_under: contextlib.AbstractContextManager | None = None,
) -> Timing:
    """Run `warmup` steps, each waited for, then time `steps` more, waiting only for the last one's loss.

    `step(x, y)` trains on one batch and returns its loss. Peak CUDA memory counts from the timed steps on.
    `timed_under` (a profiler, say) wraps the timed steps only.
    """
    started = time.perf_counter()
    for _ in range(warmup):
        step(*next(batches)).item()
    warmup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with timed_under or contextlib.nullcontext():
        started, images = time.perf_counter(), 0
        for _ in range(steps):
            x, y = next(batches)
            loss = step(x, y)
            images += len(y)
        loss.item()  # waits for the device to finish
        elapsed = time.perf_counter() - started
    return Timing(images / elapsed, warmup_s)


def measure_speed(parts: Parts, config: RunConfig, precision: Precision, steps: int = 6, warmup: int = 2) -> float:
    """Training images/s of a run's setup over a few real steps (augmentation included), after `warmup` untimed ones.

    The model's and optimizer's state are left changed: this only measures.
    """
    optimizer = build_optimizer(parts.model, config, 1e-9)
    parts.model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return train_step(parts.model, optimizer, x, y, precision)[0]

    batches = parts.train_batches
    return time_steps(step, batches.forever(), steps, warmup, batches.device).images_per_s
