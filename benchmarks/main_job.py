"""The main job's result as JSON: each cell's final accuracy against the chance bars, the budget's factor, the
training sizes and speeds, and the machine (run it under the same kernel limits as the job).

    time bash run.sh                                   # the main job, timed: note its wall time
    python benchmarks/main_job.py runs/seed-quick --wall-s 809 --out benchmarks/results/main-job-cpu-bf16.json
"""

import argparse
import json
from pathlib import Path
from typing import Any

from deepernets import bench
from deepernets.run import atomic

BARS = {"mnist": 95.0, "cifar10": 45.0}  # issue 10: every cell clearly above chance


def main_job(study_dir: Path, wall_s: float, command: str) -> dict[str, Any]:
    plan = json.loads((study_dir / "study.json").read_text())
    cells = []
    for entry in plan["runs"]:
        summary = json.loads((study_dir / entry["name"] / "summary.json").read_text())
        bar = BARS[summary["dataset"]]
        cells.append({**entry["cell"], "final_test_acc": summary["final_test_acc"], "bar": bar,
                      "above_bar": summary["final_test_acc"] >= bar, "train_images": summary["train_images"],
                      "train_images_per_s": summary["train_images_per_s"], "wall_time_s": summary["wall_time_s"],
                      "device": summary["device"], "precision": summary["precision"]})  # fmt: skip
    return {
        "benchmark": "main_job",
        "command": command,
        "versions": bench.versions(),
        "grid": plan["grid"]["name"],
        "jobs": plan["grid"].get("jobs", 1),  # runs at once
        "budget": json.loads((study_dir / "budget.json").read_text()),
        "wall_time_s (the command, venv in place)": wall_s,
        "cells_above_bars": f"{sum(c['above_bar'] for c in cells)} of {len(cells)}",
        "cells": cells,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--wall-s", type=float, required=True, help="the wall time `time bash run.sh` printed")
    parser.add_argument("--command", default="time bash run.sh", help="the command timed, with any kernel limits")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = main_job(args.study_dir, args.wall_s, args.command)
    atomic.write_json(args.out, result)
    print(f"{result['cells_above_bars']} cells above the bars; wrote {args.out}")
