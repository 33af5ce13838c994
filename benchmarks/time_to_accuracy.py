"""Wall time to a target test accuracy with the `fast` preset and an epoch budget fixed in advance.

The whole run is timed end to end (start-up, data loading, training and every epoch's evaluation). The target
counts as reached only if the final epoch's test accuracy meets it: no early stop picked by the test set.
The first epoch at or above the target is also recorded, labelled as such.

    python benchmarks/time_to_accuracy.py mnist      # resnet20 to 99.5% in 3 epochs
    python benchmarks/time_to_accuracy.py cifar10    # resnet20 to 91.25% in 50 epochs
    python benchmarks/time_to_accuracy.py cifar10 --train-args "--low-res 24 --low-res-epochs 30"
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepernets import bench
from deepernets.run import atomic
from deepernets.run.folder import RunDir

RESULTS = Path(__file__).parent / "results"
TASKS = {
    # dataset: (model, target %, epochs fixed in advance)
    "mnist": ("resnet20", 99.5, 3),
    "cifar10": ("resnet20", 91.25, 50),
}


def time_to_accuracy(
    model: str,
    dataset: str,
    target: float,
    epochs: int,
    device: str = "auto",
    extra_args: tuple[str, ...] = (),
    preset: str = "fast",
    timeout: float | None = None,
    output: Any = None,
) -> dict[str, Any]:
    """Train `model` on `dataset` for `epochs` with a run preset in a subprocess and time it end to end.

    `extra_args` go to `deepernets train` (such as --cuda-graphs, or --subset for a quick check); `output` takes
    the run's console output (a file; default: this process's). subprocess.TimeoutExpired after `timeout` s.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "deepernets", "train", "--preset", preset, "--model", model,
                   "--dataset", dataset, "--epochs", str(epochs), "--device", device,
                   "--runs-dir", tmp, "--name", "tta", *extra_args]  # fmt: skip
        started = time.perf_counter()
        stderr = subprocess.STDOUT if output else None
        subprocess.run(command, check=True, timeout=timeout, stdout=output, stderr=stderr)
        wall = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "tta" / "summary.json").read_text())
        metrics = RunDir(Path(tmp) / "tta").read_metrics()
    accuracies = [float(row["val_acc"]) for row in metrics]
    first = next((i + 1 for i, a in enumerate(accuracies) if a >= target), None)
    return {
        "benchmark": "time_to_accuracy",
        "device": summary["device"],
        "versions": bench.versions(),
        "settings": {
            "model": model,
            "dataset": dataset,
            "preset": preset,
            "epochs": epochs,
            "target": target,
            "precision": summary["precision"],
            "batch_size": summary["batch_size"],
            "extra_args": list(extra_args),
        },  # fmt: skip
        "final_test_acc": summary["final_test_acc"],
        "reached": summary["final_test_acc"] >= target,
        "wall_time_s": round(wall, 1),
        "train_and_eval_time_s": summary["wall_time_s"],
        "first_epoch_at_target (not used to stop)": first,
        "test_acc_per_epoch": accuracies,
        "train_images_per_s_median": summary["train_images_per_s"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", choices=sorted(TASKS))
    parser.add_argument("--epochs", type=int, help="override the fixed budget (then the result is not the benchmark's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-args", default="", help="more flags for `deepernets train`, as one string")
    parser.add_argument("--out", type=Path, help="the JSON file (default: results/time_to_accuracy-DATASET-KIND.json)")
    args = parser.parse_args()
    if args.train_args and not args.out:  # the default file holds the preset's own result
        parser.error("--train-args needs --out FILE")
    model, target, epochs = TASKS[args.dataset]
    epochs = args.epochs or epochs
    result = time_to_accuracy(model, args.dataset, target, epochs, args.device, tuple(shlex.split(args.train_args)))
    device_kind = "cpu" if "CPU" in result["device"] else "cuda"
    out = args.out or RESULTS / f"time_to_accuracy-{args.dataset}-{device_kind}.json"
    atomic.write_json(out, result)
    final, wall = result["final_test_acc"], result["wall_time_s"]
    verdict = "reached" if result["reached"] else "NOT reached"
    print(f"{model} on {args.dataset}: final {final:.2f}% ({verdict} {target}%) in {wall:.0f} s")
    print(f"wrote {out}")
