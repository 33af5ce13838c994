"""Training images/s of our path against the classic PIL + DataLoader pipeline, and against the GEMM rate.

python benchmarks/throughput.py            # writes benchmarks/results/throughput-<device>.json
"""

import argparse
from pathlib import Path

from deepernets import atomic, bench

RESULTS = Path(__file__).parent / "results"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet44", "vgg13_bn", "vgg16_bn"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    result = bench.throughput(args.models, 128, args.steps, args.repeats, args.device)
    kind = "cuda" if "CPU" not in result["device"] else "cpu"
    out = RESULTS / f"throughput-{kind}.json"
    atomic.write_json(out, result)
    print(f"wrote {out}")
