"""What a timing depends on besides the code: the CPU's model and ISA, kernel limits, threads, software versions."""

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepernets.train.artifacts import software_versions
from deepernets.train.device import cpu_supports_bf16

# The ISA extensions that decide which kernels run: a timing means little without them.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "avx_vnni")
# Environment variables that cap the kernels below what the CPU has (used to time an AVX2-only path on a newer CPU).
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_info() -> dict[str, Any]:
    """The CPU's model name, family and model numbers and ISA flags (Linux /proc/cpuinfo), and any limits set on
    the kernels. The numbers tell CPUs apart that a VM names alike ("AMD EPYC": family 25 model 1 is a Zen 3,
    model 17 a Zen 4)."""
    model, flags, numbers = platform.processor() or platform.machine(), set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("cpu family", "model") and key not in numbers:
                numbers[key] = value.strip()
            elif key == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "family": numbers.get("cpu family"),
        "model_number": numbers.get("model"),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "native_bf16": cpu_supports_bf16(),
        "kernel_limits": {name: os.environ[name] for name in ISA_LIMITS if name in os.environ},
    }


def versions() -> dict[str, Any]:
    """A run's software versions, with numpy's and the machine's: the CPU kernels' ISA, threads and CPU."""
    return {
        **software_versions(),
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        "cpu": cpu_info(),
    }
