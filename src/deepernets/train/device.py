"""The run's device and numeric precision: one code path for CPU and GPU, settings decide the rest."""

import contextlib
import ctypes
import platform
from dataclasses import dataclass

import torch
from torch import nn

from deepernets.errors import UserError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be auto, cpu or cuda[:N], got '{name}'") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda[:N], got '{name}'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is available: use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return device


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 or AMX); elsewhere bf16 is slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32", "bf16" or "fp16"
    channels_last: bool
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def resolve_precision(name: str, device: torch.device) -> Precision:
    """auto: bf16 autocast with channels_last on CUDA and on CPUs with native bf16, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if cpu_supports_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
    return Precision(name, channels_last=name != "fp32", device_type=device.type)


# Feature maps of at most this many pixels (4×4) are convolved in NCHW on CPU: oneDNN's channels_last kernels are
# 2-3× slower there (512 channels at 2×2: 485 against 346 GFLOP/s for forward and backward), and faster above.
SMALL_FEATURE_MAP_PIXELS = 16


def place_model(
    model: nn.Module, device: torch.device, precision: Precision, input_shape: tuple[int, ...]
) -> nn.Module:
    """Move the model to its device in the precision's memory format; `input_shape` is one image's C×H×W."""
    model = model.to(device, memory_format=precision.memory_format)
    if precision.channels_last and device.type == "cpu":
        for conv in convolutions_on_small_maps(model, input_shape):
            conv.weight.data = conv.weight.data.contiguous()
            conv.register_forward_pre_hook(_input_to_nchw)
    return model


def convolutions_on_small_maps(model: nn.Module, input_shape: tuple[int, ...]) -> list[nn.Conv2d]:
    """The Conv2d layers whose input has at most SMALL_FEATURE_MAP_PIXELS pixels, found by one probe forward pass."""
    found: list[nn.Conv2d] = []

    def record(conv: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if inputs[0].shape[-2] * inputs[0].shape[-1] <= SMALL_FEATURE_MAP_PIXELS:
            found.append(conv)

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return found


def _input_to_nchw(_conv: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (inputs[0].contiguous(), *inputs[1:])


def keep_freed_memory_mapped() -> None:
    """Stop glibc from handing freed activation memory back to the OS, once per process, on Linux.

    By default glibc unmaps freed blocks above a size threshold and trims the heap, so every training step
    page-faults its activations in again (about 15,000 faults per vgg16_bn step). Keeping them mapped made our
    CPU path 3% (vgg16_bn) to 5% (resnet20) faster, for about 1% more peak memory.
    """
    if platform.system() != "Linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"
