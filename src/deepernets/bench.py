"""Throughput benchmarks: our training path against the classic CIFAR pipeline, and against the GEMM limit.

Each measurement runs in a fresh subprocess, so its peak memory (RSS on CPU, max allocated on CUDA) is its own.
"our" path: device-resident uint8 data, batched tensor augmentation, the run's auto precision (bf16 autocast and
channels_last where supported). "classic": a torchvision-style Dataset with PIL transforms (RandomCrop(32, 4),
RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader (best of num_workers 0 and 2), fp32, NCHW, eager.
"""

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

import deepernets
from deepernets import models
from deepernets.train.device import device_description

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def gemm_rate(dtype: torch.dtype, device: torch.device, size: int = 4096, seconds: float = 3.0) -> float:
    """Dense matmul FLOP/s: the median of repeated size×size products."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    rates = []
    torch.mm(a, b)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        started = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(2 * size**3 / (time.perf_counter() - started))
    return statistics.median(rates)


def padding_flops_per_image(model_name: str, size: int = 32) -> int:
    """Forward FLOPs that convolutions spend on zero padding, which nominal counts include.

    A 3×3 convolution on a 2×2 map multiplies padding in 5 of its 9 taps; kernels that skip padding (oneDNN's
    direct convolutions, our folded 2×2 layers) do not do that work, so a share of the GEMM rate computed from
    nominal FLOPs flatters them. Counted by convolving an all-ones map with an all-ones kernel.
    """
    wasted = 0
    for conv, (h, w) in models.conv_input_sizes(models.build(model_name, 3, 10), (3, size, size)).items():
        kernel = torch.ones(1, 1, *conv.kernel_size)
        ones = torch.ones(1, 1, h, w)
        valid = F.conv2d(ones, kernel, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        padded_taps = int(valid.numel() * kernel.numel() - valid.sum())
        wasted += padded_taps * 2 * conv.in_channels * conv.out_channels // conv.groups
    return wasted


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 CIFAR-shaped images; pixel values do not change the arithmetic being timed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


class ClassicDataset(torch.utils.data.Dataset):
    """The usual CIFAR repo recipe: a PIL image per sample through torchvision transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images = images.permute(0, 2, 3, 1).numpy()  # N×H×W×C, as PIL wants
        self.labels = labels.tolist()
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def measure(path: str, model_name: str, batch_size: int, steps: int, workers: int, device_name: str) -> dict[str, Any]:
    """Training images/s of one pipeline in this process (warm-up steps excluded)."""
    from deepernets.config import RunConfig
    from deepernets.data import Batches
    from deepernets.train.cpu_speed import keep_freed_memory_mapped
    from deepernets.train.device import place_model, resolve_device, resolve_precision
    from deepernets.train.optimizers import build_optimizer
    from deepernets.train.step import train_step

    if path == "ours":
        keep_freed_memory_mapped()  # as the deepernets command does; classic CIFAR scripts do not
    device = resolve_device(device_name)
    precision = resolve_precision("auto" if path == "ours" else "fp32", device)
    torch.manual_seed(0)
    model = place_model(models.build(model_name, 3, 10), device, precision, (3, 32, 32)).train()
    optimizer = build_optimizer(model, RunConfig(), 0.01)
    warmup = 3
    n = batch_size * (steps + warmup)
    images, labels = synthetic_cifar(n)
    if path == "ours":
        stream = Batches(images, labels, batch_size, mean=CIFAR_MEAN, std=CIFAR_STD, augment="crop-flip", train=True,
                         device=device, channels_last=precision.channels_last).forever()  # fmt: skip
    else:
        loader = torch.utils.data.DataLoader(
            ClassicDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
            persistent_workers=workers > 0,
        )  # fmt: skip
        stream = ((x.to(device), y.to(device)) for x, y in loader)
    for _ in range(warmup):
        train_step(model, optimizer, *next(stream), precision)[0].item()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        loss, _ = train_step(model, optimizer, *next(stream), precision)
    loss.item()
    elapsed = time.perf_counter() - started
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # DataLoader workers
        peak = (own + children) * 1024
    return {"images_per_s": steps * batch_size / elapsed, "peak_memory_bytes": peak, "precision": precision.name,
            "channels_last": precision.channels_last}  # fmt: skip


def measure_in_subprocess(path: str, model: str, batch_size: int, steps: int, workers: int, device: str) -> dict:
    code = (
        "import json, sys; from deepernets.bench import measure; "
        f"print(json.dumps(measure({path!r}, {model!r}, {batch_size}, {steps}, {workers}, {device!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(
    model_names: list[str], batch_size: int = 128, steps: int = 10, repeats: int = 2, device: str = "auto",
    log=print,  # noqa: ANN001
) -> dict[str, Any]:  # fmt: skip
    """Ours against classic for each model, alternated A B A B, with the GEMM rates of this device."""
    from deepernets.train.device import resolve_device

    target = resolve_device(device)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "device": device_description(target),
        "versions": versions(),
        "settings": {
            "batch_size": batch_size,
            "steps": steps,
            "warmup_steps": 3,
            "repeats": repeats,
            "data": "synthetic uint8 CIFAR-shaped images (3×32×32, 10 classes)",
        },  # fmt: skip
        "gemm_gflops": {},
        "models": {},
    }
    for dtype in (torch.float32, torch.bfloat16):
        rate = gemm_rate(dtype, target)
        result["gemm_gflops"][str(dtype).replace("torch.", "")] = round(rate / 1e9, 1)
        log(f"GEMM 4096² {dtype}: {rate / 1e9:.0f} GFLOP/s")
    for name in model_names:
        flops = models.flops_per_image(name)
        useful = flops - padding_flops_per_image(name)
        runs: dict[str, list[dict]] = {"ours": [], "classic": []}
        for _ in range(repeats):
            runs["ours"].append(measure_in_subprocess("ours", name, batch_size, steps, 0, device))
            best = max(
                (
                    measure_in_subprocess("classic", name, batch_size, steps, w, device) | {"num_workers": w}
                    for w in (0, 2)
                ),
                key=lambda r: r["images_per_s"],
            )
            runs["classic"].append(best)
        entry: dict[str, Any] = {"forward_flops_per_image": flops, "forward_flops_without_padding": useful}
        for path, rs in runs.items():
            speeds = [r["images_per_s"] for r in rs]
            median = statistics.median(speeds)
            gemm = result["gemm_gflops"]["bfloat16" if rs[0]["precision"] == "bf16" else "float32"]
            entry[path] = {
                "images_per_s_median": round(median, 1),
                "images_per_s_min": round(min(speeds), 1),
                "images_per_s_max": round(max(speeds), 1),
                "peak_memory_mb": round(max(r["peak_memory_bytes"] for r in rs) / 2**20, 1),
                "precision": rs[0]["precision"],
                "channels_last": rs[0]["channels_last"],
                "training_gflops": round(median * 3 * flops / 1e9, 1),
                "fraction_of_gemm": round(median * 3 * flops / 1e9 / gemm, 3),
                "fraction_of_gemm_without_padding": round(median * 3 * useful / 1e9 / gemm, 3),
            }
            if path == "classic":
                entry[path]["num_workers"] = [r["num_workers"] for r in rs]
        entry["speedup"] = round(entry["ours"]["images_per_s_median"] / entry["classic"]["images_per_s_median"], 2)
        result["models"][name] = entry
        log(f"{name}: ours {entry['ours']['images_per_s_median']:.0f} img/s, classic "
            f"{entry['classic']['images_per_s_median']:.0f} img/s, ×{entry['speedup']}; ours reaches "
            f"{entry['ours']['fraction_of_gemm']:.0%} of the {entry['ours']['precision']} GEMM rate")  # fmt: skip
    return result


def versions() -> dict[str, str]:
    return {
        "deepernets": deepernets.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
    }
