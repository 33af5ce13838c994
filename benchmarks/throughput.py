"""Training images/s of our path against the classic PIL + DataLoader pipeline, and against the GEMM rate.

python benchmarks/throughput.py    # writes benchmarks/results/throughput-{cuda,cpu,cpu-fp32}.json (cpu: native bf16)
"""

import argparse
from pathlib import Path

from deepernets import bench
from deepernets.run import atomic

RESULTS = Path(__file__).parent / "results"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet44", "vgg13_bn", "vgg16_bn"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    result = bench.throughput(args.models, 128, args.steps, args.repeats, args.device)
    # one file per kind of device: a GPU, a CPU with native bf16, a CPU without (fp32 only)
    native_bf16 = result["versions"]["cpu"]["native_bf16"]
    kind = "cuda" if "CPU" not in result["device"] else "cpu" if native_bf16 else "cpu-fp32"
    out = RESULTS / f"throughput-{kind}.json"
    atomic.write_json(out, result)
    print(f"wrote {out}")
