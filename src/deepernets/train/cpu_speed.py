"""What makes training fast on a CPU beyond bf16 autocast and channels_last: measured with `deepernets bench`.

oneDNN's channels_last convolutions are 2-3× slower than NCHW ones on feature maps of 4×4 pixels and below
(512 channels at 2×2: 346 against 485 GFLOP/s for forward and backward) and faster above, so convolutions on
small maps take NCHW input and weights (vgg16_bn +10%). A 3×3 convolution on a 2×2 map is folded into one matrix
product, which skips the zero padding that is more than half of its nominal work (vgg16_bn +9% more). Keeping freed
memory mapped spares every step its page faults (resnet20 +5%). Which maps are small is found by one probe pass
(conv_input_sizes), which the benchmarks use too.
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


# For output pixel p and input pixel q of a 2×2 map (both numbered y * 2 + x), the 3×3 tap linking them.
FOLD_TAPS = [(qy - py + 1) * 3 + (qx - px + 1) for py in (0, 1) for px in (0, 1) for qy in (0, 1) for qx in (0, 1)]


class FoldedConv2d(nn.Conv2d):
    """A 3×3, stride-1, padding-1 Conv2d on 2×2 maps, computed as one matrix product in channels_last.

    Output pixel p sees input pixel q through one tap of the kernel, so the layer is a linear map from 4·C to
    4·O values, with the O×C matrix of that tap in block (p, q). Built tap-major, the matrix and both activations
    are plain views of channels_last tensors.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (2, 2):
            return super().forward(x)
        n, o, c = x.shape[0], self.out_channels, self.in_channels
        weight = self.weight
        if torch.is_autocast_enabled(x.device.type):  # fold the bf16 copy: half the bytes to move
            weight = weight.to(torch.get_autocast_dtype(x.device.type))
        by_tap = weight.permute(2, 3, 0, 1).reshape(9, o, c)
        blocks = by_tap.index_select(0, torch.tensor(FOLD_TAPS, device=x.device))  # (p, q) blocks, row-major
        matrix = blocks.view(4, 4, o, c).transpose(1, 2).reshape(4 * o, 4 * c)  # rows (p, o), columns (q, c)
        bias = None if self.bias is None else self.bias.repeat(4)
        out = F.linear(x.permute(0, 2, 3, 1).reshape(n, 4 * c), matrix, bias)
        return out.view(n, 2, 2, o).permute(0, 3, 1, 2)


def convolve_small_maps_fast(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Switch the Conv2d layers that see small maps to NCHW (or folded) versions, in place.

    The swap changes only the class, as torch.nn.utils.parametrize does: parameters, state_dict keys and
    checkpoints stay those of a plain Conv2d.
    """
    for conv, (h, w) in conv_input_sizes(model, input_shape).items():
        if h * w > SMALL_MAP_PIXELS:
            continue
        foldable = (h, w) == (2, 2) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        foldable &= conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
        if foldable and conv.padding_mode == "zeros":
            conv.__class__ = FoldedConv2d
        else:
            conv.weight.data = conv.weight.data.contiguous()
            conv.__class__ = NCHWConv2d


def conv_input_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Conv2d, tuple[int, int]]:
    """Each plain Conv2d layer's input height and width, from one probe forward pass of one C×H×W image."""
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
