"""Step time-to-accuracy: each of the plan's tasks through benchmarks/time_to_accuracy.py, with the fastest variant
the throughput step measured for its model; a task that speed says cannot finish in the time left is skipped."""

import subprocess
import time
from typing import Any

from time_to_accuracy import time_to_accuracy  # benchmarks/time_to_accuracy.py

from gpu.context import Sitting

VARIANT_FLAGS = {"eager": [], "compile": ["--compile"], "cuda-graphs": ["--cuda-graphs"]}  # for `deepernets train`
FULL = {"cifar10": 50_000, "mnist": 60_000}  # training images


def run(sitting: Sitting, until: float) -> dict[str, Any]:
    fastest = sitting.steps.get("throughput", {}).get("fastest", {})
    tasks, status = [], "done"
    with sitting.log_path.open("a") as log:
        for task in sitting.plan.tta:
            speed = fastest.get(task["model"], {})
            variant = speed.get("variant", "eager")
            name = f"{task['dataset']}-{task['model']}"
            args = [*task["args"], *VARIANT_FLAGS[variant]]
            left = until - time.monotonic()
            estimate = _estimate(task, args, speed)
            if left <= 5 or estimate > left:
                why = (
                    f"would take about {estimate:.0f} s by step 2's speed, {left:.0f} s left"
                    if estimate > left
                    else "out of time"
                )
                tasks.append({"task": name, "status": f"skipped: {why}", "variant": variant})
                status = "partial: out of time"
                continue
            sitting.say(f"  {task['model']} on {task['dataset']}: {task['epochs']} epochs, {variant}")
            try:
                r = time_to_accuracy(task["model"], task["dataset"], task["target"], task["epochs"],
                                     sitting.plan.device, tuple(args), timeout=left, output=log)  # fmt: skip
            except subprocess.TimeoutExpired:
                tasks.append({"task": name, "status": "stopped: out of time", "variant": variant})
                status = "partial: out of time"
                continue
            except subprocess.CalledProcessError as e:
                tasks.append({"task": name, "status": f"failed: exit code {e.returncode}", "variant": variant})
                status = "failed" if status == "done" else status
                continue
            r["settings"]["variant"] = variant
            file = sitting.write(f"time_to_accuracy-{name}-{sitting.kind}.json", r)
            tasks.append({"task": name, "status": "done", "variant": variant, "file": file.name,
                          "final_test_acc": r["final_test_acc"], "target": task["target"], "reached": r["reached"],
                          "wall_time_s": r["wall_time_s"], "epochs": task["epochs"]})  # fmt: skip
    return {"status": status, "tasks": tasks}


def _estimate(task: dict[str, Any], args: list[str], speed: dict[str, Any]) -> float:
    """Seconds the task should take by step 2's speed: start-up, compiling, and every epoch's training and
    evaluation; 0 when step 2 did not measure its model."""
    if not speed:
        return 0
    train_images = int(args[args.index("--subset") + 1]) if "--subset" in args else FULL[task["dataset"]]
    return 15 + speed.get("warmup_s", 0) + task["epochs"] * train_images * 1.2 / speed["images_per_s"]
