"""Where a training step's time goes: torch.profiler's top operators for our path, per model.

python benchmarks/profile_training.py      # writes benchmarks/results/profile-<device>.json
"""

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from deepernets import bench, models
from deepernets.bench.pipelines import our_batches, synthetic_cifar
from deepernets.config import RunConfig
from deepernets.run import atomic
from deepernets.train.cpu_speed import keep_freed_memory_mapped
from deepernets.train.device import device_description, place_model, resolve_device, resolve_precision
from deepernets.train.optimizers import build_optimizer
from deepernets.train.speed import time_steps
from deepernets.train.step import train_step

RESULTS = Path(__file__).parent / "results"


def profile_model(name: str, device: torch.device, steps: int, top: int) -> dict:
    precision = resolve_precision("auto", device)
    model = place_model(models.build(name), device, precision, (3, 32, 32)).train()
    optimizer = build_optimizer(model, RunConfig(), 0.01)
    images, labels = synthetic_cifar(128 * (steps + 2))
    batches = our_batches(images, labels, 128, device, precision.channels_last)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return train_step(model, optimizer, x, y, precision)[0]

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    prof = profile(activities=activities)
    time_steps(step, batches, steps, 2, device, timed_under=prof)  # the 2 warm-up steps are not profiled
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {
        "precision": precision.name,
        "steps": steps,
        "total_self_cpu_ms": round(total / 1e3, 1),
        "top_ops": [
            {
                "op": e.key,
                "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
                "share": round(e.self_cpu_time_total / total, 3),
                "calls": e.count,
            }  # fmt: skip
            for e in events[:top]
        ],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg16_bn"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="the JSON file to write (default benchmarks/results/profile-<device>.json)")
    args = parser.parse_args()
    keep_freed_memory_mapped()  # as the deepernets command does
    device = resolve_device(args.device)
    result = {"benchmark": "profile", "device": device_description(device), "versions": bench.versions(),
              "models": {name: profile_model(name, device, args.steps, args.top) for name in args.models}}  # fmt: skip
    for name, entry in result["models"].items():
        print(f"{name} ({entry['precision']}, {entry['steps']} steps, {entry['total_self_cpu_ms']} ms self CPU):")
        for op in entry["top_ops"]:
            print(f"  {op['share']:6.1%} {op['self_cpu_ms']:9.1f} ms  {op['calls']:5}×  {op['op']}")
    out = args.out or RESULTS / f"profile-{'cuda' if device.type == 'cuda' else 'cpu'}.json"
    atomic.write_json(out, result)
    print(f"wrote {out}")
