"""The device's dense matmul rate, the limit a training step's arithmetic is measured against, and the FLOPs that
nominal counts spend on zero padding."""

import statistics
import time

import torch
import torch.nn.functional as F

from deepernets import models
from deepernets.train.cpu_speed import conv_input_sizes
from deepernets.train.device import cpu_supports_bf16


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
    for conv, (h, w) in conv_input_sizes(models.build(model_name, 3, 10), (3, size, size)).items():
        kernel = torch.ones(1, 1, *conv.kernel_size)
        ones = torch.ones(1, 1, h, w)
        valid = F.conv2d(ones, kernel, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        padded_taps = int(valid.numel() * kernel.numel() - valid.sum())
        wasted += padded_taps * 2 * conv.in_channels * conv.out_channels // conv.groups
    return wasted


def native_dtypes(device: torch.device) -> list[torch.dtype]:
    """The matmul precisions this device runs in hardware: fp32, plus bf16 on CUDA and on CPUs with AVX-512 BF16/AMX."""
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    return [torch.float32, torch.bfloat16] if bf16 else [torch.float32]
