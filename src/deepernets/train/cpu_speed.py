"""What makes training fast on a CPU beyond bf16 autocast and channels_last: measured with benchmarks/throughput.py.

oneDNN's channels_last convolutions are 2-3× slower than NCHW ones on feature maps of 4×4 pixels and below
(512 channels at 2×2: 346 against 485 GFLOP/s for forward and backward) and faster above, so convolutions on
small maps take NCHW input and weights. A 3×3 convolution on a 2×2 map is folded into one matrix product, which
skips the zero padding that is more than half of its nominal work. Together: vgg16_bn +10% and +4%.
"""

import ctypes
import platform

import torch
import torch.nn.functional as F
from torch import nn

SMALL_MAP_PIXELS = 16


class NCHWConv2d(nn.Conv2d):
    """A Conv2d that convolves in NCHW whatever layout its input arrives in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous())


class FoldedConv2d(NCHWConv2d):
    """A 3×3, stride-1, padding-1 Conv2d on 2×2 maps, computed as one matrix product.

    Output pixel (py, px) sees input pixel (qy, qx) through tap (qy - py + 1, qx - px + 1), so the layer is a
    linear map from C·4 to O·4 values whose matrix holds, for each output pixel, the 2×2 corner of the kernel
    that falls on the image.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (2, 2):
            return super().forward(x)
        weight = self.weight
        if torch.is_autocast_enabled(x.device.type):  # fold the bf16 copy: half the bytes to gather
            weight = weight.to(torch.get_autocast_dtype(x.device.type))
        corners = [weight[:, :, 1 - py : 3 - py, 1 - px : 3 - px] for py in (0, 1) for px in (0, 1)]
        matrix = torch.stack(corners, dim=1).reshape(self.out_channels * 4, self.in_channels * 4)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        n = x.shape[0]
        return F.linear(x.reshape(n, -1), matrix, bias).view(n, self.out_channels, 2, 2)


def convolve_small_maps_fast(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Switch the Conv2d layers that see small maps to NCHW (or folded) versions, in place.

    The swap changes only the class, as torch.nn.utils.parametrize does: parameters, state_dict keys and
    checkpoints stay those of a plain Conv2d.
    """
    for conv, (h, w) in input_sizes(model, input_shape).items():
        if h * w > SMALL_MAP_PIXELS:
            continue
        conv.weight.data = conv.weight.data.contiguous()
        foldable = (h, w) == (2, 2) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        foldable &= conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
        conv.__class__ = FoldedConv2d if foldable and conv.padding_mode == "zeros" else NCHWConv2d


def input_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Conv2d, tuple[int, int]]:
    """Each plain Conv2d layer's input height and width, from one probe forward pass in eval mode."""
    sizes: dict[nn.Conv2d, tuple[int, int]] = {}

    def record(conv: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        sizes[conv] = tuple(inputs[0].shape[-2:])

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if type(m) is nn.Conv2d]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return sizes


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
