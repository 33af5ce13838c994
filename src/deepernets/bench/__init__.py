"""Throughput benchmarks: our training path against the classic CIFAR pipeline, and against the GEMM limit.

Each measurement runs in a fresh subprocess, so its peak memory (RSS on CPU, max allocated on CUDA) is its own.
"our" path: device-resident uint8 data, batched tensor augmentation, the run's auto precision (bf16 autocast and
channels_last where supported). "classic": a torchvision-style Dataset with PIL transforms (RandomCrop(32, 4),
RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader (the best of the given worker counts; pinned memory
on CUDA), fp32, NCHW, eager. Our path can also be timed under `torch.compile` ("compile") and with each step
replayed as CUDA graphs ("cuda-graphs", compile's "reduce-overhead" mode, CUDA only), as `--compile` and
`--cuda-graphs` train.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

import deepernets
from deepernets import models
from deepernets.train.device import cpu_supports_bf16, device_description

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


VARIANTS = ("eager", "compile", "cuda-graphs")  # how our path runs the model


def gemm_rate(dtype: torch.dtype, device: torch.device, size: int = 4096, seconds: float = 3.0) -> float:
    """Dense matmul FLOP/s on random data: the median of repeated size×size products.

    On CUDA each timing covers 10 products between synchronizations, so launch and sync costs do not count.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    per_timing = 10 if device.type == "cuda" else 1
    rates = []
    torch.mm(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        started = time.perf_counter()
        for _ in range(per_timing):
            torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates.append(per_timing * 2 * size**3 / (time.perf_counter() - started))
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


def measure(
    path: str, model_name: str, batch_size: int, steps: int, workers: int, device_name: str, variant: str = "eager"
) -> dict[str, Any]:
    """Training images/s of one pipeline in this process (warm-up steps, and so compiling, excluded)."""
    from deepernets.config import RunConfig
    from deepernets.data import Batches
    from deepernets.train.cpu_speed import keep_freed_memory_mapped
    from deepernets.train.device import Precision, place_model, resolve_device, resolve_precision
    from deepernets.train.optimizers import build_optimizer
    from deepernets.train.step import train_step

    if path == "ours":
        keep_freed_memory_mapped()  # as the deepernets command does; classic CIFAR scripts do not
    device = resolve_device(device_name)
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
    warmup = 3 if variant == "eager" else 5  # CUDA graphs are recorded on the first calls after compiling

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if variant == "cuda-graphs":
            torch.compiler.cudagraph_mark_step_begin()
        return train_step(forward, optimizer, x, y, precision)[0]

    n = batch_size * (steps + warmup)
    images, labels = synthetic_cifar(n)
    if path == "ours":
        stream = Batches(images, labels, batch_size, mean=CIFAR_MEAN, std=CIFAR_STD, augment="crop-flip", train=True,
                         device=device, channels_last=precision.channels_last).forever()  # fmt: skip
    else:
        pin = device.type == "cuda"  # as classic GPU scripts do: pinned batches, copied without blocking
        loader = torch.utils.data.DataLoader(
            ClassicDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=pin,
        )  # fmt: skip
        stream = ((x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)) for x, y in loader)
    warmup_started = time.perf_counter()
    for _ in range(warmup):
        step(*next(stream)).item()
    warmup_s = time.perf_counter() - warmup_started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        loss = step(*next(stream))
    loss.item()
    elapsed = time.perf_counter() - started
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # DataLoader workers
        peak = (own + children) * 1024
    return {"images_per_s": steps * batch_size / elapsed, "peak_memory_bytes": peak, "precision": precision.name,
            "channels_last": precision.channels_last, "variant": variant,
            "warmup_s": round(warmup_s, 2)}  # fmt: skip


def measure_command(
    path: str, model: str, batch_size: int, steps: int, workers: int, device: str, variant: str = "eager"
) -> list[str]:
    """The command that runs measure() in a fresh process and prints its result as JSON."""
    code = (
        "import json, sys; from deepernets.bench import measure; "
        f"print(json.dumps(measure({path!r}, {model!r}, {batch_size}, {steps}, {workers}, {device!r}, {variant!r})))"
    )
    return [sys.executable, "-c", code]


def measure_in_subprocess(
    path: str, model: str, batch_size: int, steps: int, workers: int, device: str, variant: str = "eager",
    timeout: float | None = None,
) -> dict:  # fmt: skip
    """measure() in a fresh process; subprocess.TimeoutExpired after `timeout` seconds (the process is killed)."""
    command = measure_command(path, model, batch_size, steps, workers, device, variant)
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def precompile(jobs: list[tuple[str, str]], batch_size: int, device: str, deadline: float | None) -> float:
    """Compile every (model, variant) at once, each in its own process, and return the seconds it took.

    Compiling takes far longer than the timed steps, and much of it runs on one core; run side by side, the
    compilations fill the on-disk caches (Inductor's FX graph and AOTAutograd caches, Triton's kernels) that
    the timed processes then reuse. Only the wall time of a sitting changes: warm-up steps, compiling
    included, are never timed.
    """
    started = time.monotonic()
    # each process's pool of compile workers gets its share of the cores, not all of them
    threads = max(2, (os.cpu_count() or 2) // max(1, len(jobs)))
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": str(threads)}
    procs = [
        subprocess.Popen(
            measure_command("ours", model, batch_size, 1, 0, device, variant),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for model, variant in jobs
    ]
    for proc in procs:
        try:
            proc.wait(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return time.monotonic() - started


def throughput(
    model_names: list[str], batch_size: int = 128, steps: int = 10, repeats: int = 2, device: str = "auto",
    log=print,  # noqa: ANN001
    *, variants: tuple[str, ...] = ("eager",), classic_workers: tuple[int, ...] = (0, 2),
    deadline: float | None = None, gemm_seconds: float = 3.0, gemm_size: int | None = None,
    parallel_compile: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Ours against classic for each model, alternated A B A B, with the GEMM rates of this device.

    `variants` beyond "eager" time our path compiled too, after every model's eager and classic runs (compiling
    is slow; `parallel_compile` first compiles them all side by side, see precompile()). At `deadline` (a
    time.monotonic() value) measuring stops; `left_out` lists what was not measured, and any measurement that
    failed, with why.
    """
    from deepernets.train.device import resolve_device

    target = resolve_device(device)
    gemm_size = gemm_size or (8192 if target.type == "cuda" else 4096)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "device": device_description(target),
        "versions": versions(),
        "settings": {
            "batch_size": batch_size,
            "steps": steps,
            "warmup_steps": 3,
            "warmup_steps_compiled": 5,
            "repeats": repeats,
            "variants": ["eager", *(v for v in variants if v != "eager")],
            "classic_workers": list(classic_workers),
            "gemm_size": gemm_size,
            "data": "synthetic uint8 CIFAR-shaped images (3×32×32, 10 classes)",
        },  # fmt: skip
        "gemm_gflops": {},
        "models": {},
        "left_out": [],
    }
    for dtype in native_dtypes(target):  # emulated bf16 is ~100x slower: timing it says nothing and takes forever
        log(f"timing GEMM {gemm_size}² {dtype} ({gemm_seconds:.0f} s)")
        rate = gemm_rate(dtype, target, gemm_size, gemm_seconds)
        result["gemm_gflops"][str(dtype).replace("torch.", "")] = round(rate / 1e9, 1)
        log(f"GEMM {gemm_size}² {dtype}: {rate / 1e9:.0f} GFLOP/s")
    plan: list = []  # (repeat, model, path, variant, workers): every model's eager and classic runs before compiling
    for repeat in range(repeats):
        for name in model_names:
            plan.append((repeat, name, "ours", "eager", 0))
            plan += [(repeat, name, "classic", "eager", w) for w in classic_workers]
    compiled = [(name, variant) for variant in result["settings"]["variants"][1:] for name in model_names]
    if compiled and parallel_compile:
        plan.append("precompile")
    for repeat in range(repeats):
        plan += [(repeat, name, "ours", variant, 0) for name, variant in compiled]
    measured: dict[tuple[str, str], list[dict]] = {}  # (model, variant or "classic") -> measurements
    for step, item in enumerate(plan, 1):
        if item == "precompile":
            if deadline is None or deadline > time.monotonic():
                seconds = precompile(compiled, batch_size, device, deadline)
                result["settings"]["parallel_compile_s"] = round(seconds, 1)
                log(f"compiled {len(compiled)} model variants side by side in {seconds:.0f} s")
            continue
        repeat, name, path, variant, workers = item
        what = f"{name} {f'classic, {workers} workers' if path == 'classic' else variant} (repeat {repeat + 1})"
        left = None if deadline is None else deadline - time.monotonic()
        log(f"[{step}/{len(plan)}] timing {what}")
        try:
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(what, 0)
            r = measure_in_subprocess(path, name, batch_size, steps, workers, device, variant, timeout=left)
        except subprocess.TimeoutExpired:
            result["left_out"].append(f"{what}: out of time")
            continue
        except subprocess.CalledProcessError as e:
            reason = (e.stderr or "").strip().splitlines()[-1:] or [f"exit code {e.returncode}"]
            result["left_out"].append(f"{what}: failed ({reason[0][:300]})")
            log(f"{what}: failed ({reason[0][:300]})")
            continue
        measured.setdefault((name, "classic" if path == "classic" else variant), []).append(
            r | {"num_workers": workers, "repeat": repeat}
        )
    for name in model_names:
        flops = models.flops_per_image(name)
        useful = flops - padding_flops_per_image(name)
        entry: dict[str, Any] = {"forward_flops_per_image": flops, "forward_flops_without_padding": useful}
        if (name, "eager") in measured:
            entry["ours"] = summarize(measured[name, "eager"], flops, useful, result["gemm_gflops"])
        classic = measured.get((name, "classic"), [])
        if classic:  # per repeat, the best worker count
            best = [max((r for r in classic if r["repeat"] == i), key=lambda r: r["images_per_s"])
                    for i in sorted({r["repeat"] for r in classic})]  # fmt: skip
            entry["classic"] = summarize(best, flops, useful, result["gemm_gflops"])
            entry["classic"]["num_workers"] = [r["num_workers"] for r in best]
            entry["classic_by_workers"] = {
                str(w): round(statistics.median(r["images_per_s"] for r in classic if r["num_workers"] == w), 1)
                for w in classic_workers
                if any(r["num_workers"] == w for r in classic)
            }
        for variant in result["settings"]["variants"][1:]:
            if (name, variant) in measured:
                entry.setdefault("ours_variants", {})[variant] = summarize(
                    measured[name, variant], flops, useful, result["gemm_gflops"]
                )
        ours_all = {"eager": entry.get("ours"), **entry.get("ours_variants", {})}
        fastest = max((v for v in ours_all if ours_all[v]), key=lambda v: ours_all[v]["images_per_s_median"],
                      default=None)  # fmt: skip
        if fastest is not None:
            entry["fastest_variant"] = fastest
        if "classic" in entry:
            base = entry["classic"]["images_per_s_median"]
            if "ours" in entry:
                entry["speedup"] = round(entry["ours"]["images_per_s_median"] / base, 2)
            if fastest is not None:
                entry["speedup_fastest"] = round(ours_all[fastest]["images_per_s_median"] / base, 2)
        if len(entry) == 2:
            continue  # nothing measured for this model
        result["models"][name] = entry
        if "speedup" in entry:
            log(f"{name}: ours {entry['ours']['images_per_s_median']:.0f} img/s, classic "
                f"{entry['classic']['images_per_s_median']:.0f} img/s, ×{entry['speedup']}; ours reaches "
                f"{entry['ours']['fraction_of_gemm']:.0%} of the {entry['ours']['precision']} GEMM rate")  # fmt: skip
        for variant, v in entry.get("ours_variants", {}).items():
            log(f"{name} {variant}: {v['images_per_s_median']:.0f} img/s, {v['fraction_of_gemm']:.0%} of the "
                f"{v['precision']} GEMM rate (warm-up with compiling {v['warmup_s_median']:.0f} s)")  # fmt: skip
    for line in result["left_out"]:
        log(f"left out: {line}")
    return result


def summarize(rs: list[dict], flops: int, useful: int, gemm_gflops: dict[str, float]) -> dict[str, Any]:
    """Median, min and max images/s of repeated measurements, as training GFLOP/s and shares of the GEMM rate."""
    speeds = [r["images_per_s"] for r in rs]
    median = statistics.median(speeds)
    gemm = gemm_gflops["bfloat16" if rs[0]["precision"] == "bf16" else "float32"]
    return {
        "images_per_s_median": round(median, 1),
        "images_per_s_min": round(min(speeds), 1),
        "images_per_s_max": round(max(speeds), 1),
        "peak_memory_mb": round(max(r["peak_memory_bytes"] for r in rs) / 2**20, 1),
        "precision": rs[0]["precision"],
        "channels_last": rs[0]["channels_last"],
        "training_gflops": round(median * 3 * flops / 1e9, 1),
        "fraction_of_gemm": round(median * 3 * flops / 1e9 / gemm, 3),
        "fraction_of_gemm_without_padding": round(median * 3 * useful / 1e9 / gemm, 3),
        "warmup_s_median": round(statistics.median(r["warmup_s"] for r in rs), 2),
    }


def native_dtypes(device: torch.device) -> list[torch.dtype]:
    """The matmul precisions this device runs in hardware: fp32, plus bf16 on CUDA and on CPUs with AVX-512 BF16/AMX."""
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    return [torch.float32, torch.bfloat16] if bf16 else [torch.float32]


# The ISA extensions that decide which kernels run: a timing means little without them.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "avx_vnni")
# Environment variables that cap the kernels below what the CPU has (used to time an AVX2-only path on a newer CPU).
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and ISA flags (Linux /proc/cpuinfo), and any limits set on the kernels."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "native_bf16": cpu_supports_bf16(),
        "kernel_limits": {name: os.environ[name] for name in ISA_LIMITS if name in os.environ},
    }


def versions() -> dict[str, Any]:
    return {
        "deepernets": deepernets.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        "cpu": cpu_info(),
    }
