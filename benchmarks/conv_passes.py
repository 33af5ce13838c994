"""Each convolution of our training path, timed alone in its three passes: forward, input gradient and weight
gradient, in GFLOP/s beside the device's GEMM rate. Where a training step runs below the GEMM rate, this says
which pass and which layers hold it back.

python benchmarks/conv_passes.py --out benchmarks/results/conv-passes-cpu-avx2-epyc.json

Every layer sees the input it gets in training (batch 128, its layout and precision, taken from one forward pass
of the placed model), so the NCHW and folded small-map layers of the CPU path are timed as they run.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deepernets import bench, models
from deepernets.bench.gemm import gemm_rate
from deepernets.run import atomic
from deepernets.train.cpu_speed import keep_freed_memory_mapped
from deepernets.train.device import Precision, device_description, place_model, resolve_device, resolve_precision

PASSES = ("forward", "input_gradient", "weight_gradient")


def median_ms(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    times = []
    for i in range(repeats + 2):  # two warm-up calls: oneDNN builds its kernels on the first
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def training_inputs(model: nn.Module, images: torch.Tensor, precision: Precision) -> dict[nn.Conv2d, torch.Tensor]:
    """Each convolution's input in one training-mode forward pass (the swapped small-map classes included)."""
    inputs: dict[nn.Conv2d, torch.Tensor] = {}

    def record(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        inputs[conv] = args[0].detach().requires_grad_(args[0].requires_grad)

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with precision.autocast():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs


def time_layer(conv: nn.Conv2d, x: torch.Tensor, precision: Precision, repeats: int) -> dict:
    with precision.autocast():
        y = conv(x)
    grad = torch.randn_like(y)
    runs = {"forward": lambda: conv(x), "weight_gradient": lambda: torch.autograd.grad(y, conv.weight, grad, True)}
    if x.requires_grad:  # the first layer's input is the image: training never computes its gradient
        runs["input_gradient"] = lambda: torch.autograd.grad(y, x, grad, retain_graph=True)
    flops = 2 * y.numel() * conv.weight[0].numel()  # nominal: every tap, padding included, as the bench counts
    entry = {
        "layer": type(conv).__name__,
        "in_channels": conv.in_channels,
        "out_channels": conv.out_channels,
        "map": list(x.shape[-2:]),
        "channels_last": x.is_contiguous(memory_format=torch.channels_last),
        "flops_per_pass": flops,
    }
    for name in PASSES:
        if name in runs:
            with precision.autocast():
                ms = median_ms(runs[name], x.device, repeats)
            entry[f"{name}_ms"] = round(ms, 2)
            entry[f"{name}_gflops"] = round(flops / ms / 1e6, 1)
    return entry


def model_passes(name: str, device: torch.device, batch_size: int, repeats: int, gemm_gflops: float) -> dict:
    precision = resolve_precision("auto", device)
    model = place_model(models.build(name, 3, 10), device, precision, (3, 32, 32)).train()
    images = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=precision.memory_format)
    layers = [time_layer(conv, x, precision, repeats) for conv, x in training_inputs(model, images, precision).items()]
    totals = {}
    for name in PASSES:
        timed = [layer for layer in layers if f"{name}_ms" in layer]
        ms = sum(layer[f"{name}_ms"] for layer in timed)
        gflops = sum(layer["flops_per_pass"] for layer in timed) / ms / 1e6
        totals[name] = {"ms_per_step": round(ms, 1), "gflops": round(gflops, 1),
                        "share_of_gemm": round(gflops / gemm_gflops, 3)}  # fmt: skip
    return {"precision": precision.name, "batch_size": batch_size, "totals": totals, "layers": layers}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg16_bn"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per pass and layer (median)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keep_freed_memory_mapped()  # as the deepernets command does
    device = resolve_device(args.device)
    dtype = resolve_precision("auto", device).dtype or torch.float32
    gemm = gemm_rate(dtype, device) / 1e9
    result = {
        "benchmark": "conv_passes",
        "device": device_description(device),
        "versions": bench.versions(),
        "gemm_gflops": {str(dtype).removeprefix("torch."): round(gemm, 1)},
        "models": {name: model_passes(name, device, args.batch_size, args.repeats, gemm) for name in args.models},
    }
    print(f"{result['device']}, GEMM {gemm:.0f} GFLOP/s ({dtype})")
    for name, entry in result["models"].items():
        print(f"{name} ({entry['precision']}, batch {entry['batch_size']}), each pass over all convolutions:")
        for pass_name, total in entry["totals"].items():
            print(f"  {pass_name:16} {total['ms_per_step']:8.1f} ms  {total['gflops']:6.1f} GFLOP/s "
                  f"({total['share_of_gemm']:.0%} of GEMM)")  # fmt: skip
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")
