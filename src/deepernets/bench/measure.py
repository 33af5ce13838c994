"""One measurement: training images/s of one pipeline and model, with the peak memory it needed.

A benchmark takes its measurements in child processes (bench/worker.py), so that each one's peak memory (RSS on
CPU, the allocator's peak on CUDA, counted from what was allocated when it started) is its own. Our path runs
in the run's auto precision (bf16 autocast and channels_last where supported), eagerly or under `torch.compile`
("compile") or with each step replayed as CUDA graphs ("cuda-graphs", compile's "reduce-overhead" mode, CUDA
only), as `--compile` and `--cuda-graphs` train; the classic path in fp32, NCHW, eager.
"""

import resource
from typing import Any

import torch

from deepernets import models
from deepernets.bench.pipelines import classic_batches, our_batches, synthetic_cifar
from deepernets.config import RunConfig
from deepernets.train.cpu_speed import keep_freed_memory_mapped
from deepernets.train.device import Precision, place_model, resolve_device, resolve_precision
from deepernets.train.optimizers import build_optimizer
from deepernets.train.speed import time_steps
from deepernets.train.step import train_step

VARIANTS = ("eager", "compile", "cuda-graphs")  # how our path runs the model
WARMUP_STEPS = {"eager": 3, "compiled": 5}  # CUDA graphs are recorded on the first calls after compiling


def measure(
    path: str, model_name: str, batch_size: int, steps: int, workers: int, device_name: str, variant: str = "eager"
) -> dict[str, Any]:
    """Training images/s of one pipeline in this process (warm-up steps, and so compiling, excluded)."""
    if path == "ours":
        keep_freed_memory_mapped()  # as the deepernets command does; classic CIFAR scripts do not
    device = resolve_device(device_name)
    # what a process measuring in series still holds from before (ought to be 0); time_steps() resets the peak
    allocated_before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if variant not in VARIANTS or (variant != "eager" and path != "ours"):
        raise ValueError(f"variant {variant!r}: one of {VARIANTS}, and only for our path")
    if variant == "cuda-graphs" and device.type != "cuda":
        raise ValueError("the cuda-graphs variant needs a CUDA device")
    # classic: fp32 in PyTorch's default NCHW layout, as the usual CIFAR scripts train
    precision = resolve_precision("auto", device) if path == "ours" else Precision("fp32", False, device.type)
    torch.manual_seed(0)
    model = place_model(models.build(model_name, 3, 10), device, precision, (3, 32, 32)).train()
    optimizer = build_optimizer(model, RunConfig(), 0.01)
    forward = model
    if variant != "eager":  # as the training loop does for --compile and --cuda-graphs
        forward = torch.compile(model, mode="reduce-overhead" if variant == "cuda-graphs" else "default")
    warmup = WARMUP_STEPS["eager" if variant == "eager" else "compiled"]

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if variant == "cuda-graphs":
            torch.compiler.cudagraph_mark_step_begin()
        return train_step(forward, optimizer, x, y, precision)[0]

    images, labels = synthetic_cifar(batch_size * (steps + warmup))
    if path == "ours":
        batches = our_batches(images, labels, batch_size, device, precision.channels_last)
    else:
        batches = classic_batches(images, labels, batch_size, device, workers)
    timing = time_steps(step, batches, steps, warmup, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - allocated_before
    else:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # DataLoader workers
        peak = (own + children) * 1024
    return {"images_per_s": timing.images_per_s, "peak_memory_bytes": peak, "precision": precision.name,
            "channels_last": precision.channels_last, "variant": variant,
            "warmup_s": round(timing.warmup_s, 2), "allocated_at_start_bytes": allocated_before}  # fmt: skip
