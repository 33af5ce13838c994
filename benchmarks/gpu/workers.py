"""`deepernets study --jobs N` (N runs at once) on one study folder, on a slice or a reordering of a shipped grid."""

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from deepernets.run.folder import DONE, RunDir
from deepernets.study import load_grid
from gpu.context import Sitting

# What a sitting keeps of each run's summary.json: enough to count, rate and name the runs
SUMMARY_KEYS = ("name", "status", "model", "dataset", "optimizer", "schedule", "lr", "epochs", "epochs_completed",
                "final_test_acc", "wall_time_s", "train_images_per_s", "train_images")  # fmt: skip


def grid_file(
    sitting: Sitting, grid_name: str, file_name: str, axes: dict[str, list], lr_finder_steps: int | None
) -> Path:
    """A shipped grid with those of its axes that `axes` names cut down or reordered (never given new values), as
    the grid YAML file FILE_NAME.yaml; the grid keeps its name, so its runs and report are the shipped grid's."""
    grid = dataclasses.asdict(load_grid(grid_name))
    grid["axes"] = {k: [x for x in axes[k] if x in v] if k in axes else v for k, v in grid["axes"].items()}
    if lr_finder_steps:
        grid["lr_finder_steps"] = lr_finder_steps
    path = sitting.work / f"{file_name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def run_workers(
    sitting: Sitting, grid: Path, folder: Path, n: int, overrides: dict[str, Any], until: float
) -> dict[str, Any]:
    """`deepernets study --jobs n` on one folder, the documented way to run a study on one GPU; stopped (SIGINT) at
    `until`. Its log goes to sitting.log once it ends; what it did is read from the run folders."""
    folder.mkdir(parents=True, exist_ok=True)
    flags = [_flag(k, v) for k, v in overrides.items()]
    if sitting.plan.device != "auto":
        flags.append(f"--device={sitting.plan.device}")
    threads = sitting.plan.threads or max(1, (os.cpu_count() or 2) // n)
    env = {**sitting.env, "OMP_NUM_THREADS": str(threads * n)}  # the study gives each of its n jobs an nth
    command = [sys.executable, "-m", "deepernets", "study", str(grid), "--runs-dir", str(folder), f"--jobs={n}"]
    started = time.monotonic()
    log_path = folder / "study.log"
    with log_path.open("w") as log:
        proc = sitting.processes.start([*command, *flags], log, env)
    out_of_time = sitting.processes.wait([proc], until)
    wall = time.monotonic() - started
    with sitting.log_path.open("a") as log:
        log.write(f"--- {folder.name}, {n} jobs\n{log_path.read_text(errors='replace')}")
    runs = run_summaries(folder)
    finished = done(runs)
    images = sum(r["train_images"] * r["epochs_completed"] for r in runs)
    return {
        "workers": n,
        "omp_threads": threads,
        "wall_s": round(wall, 1),
        "out_of_time": out_of_time,
        "runs_finished": len(finished),
        "runs_per_hour": round(len(finished) / wall * 3600, 1),
        "train_images_per_s_all_workers": round(images / wall, 1),
        "exit_code": proc.returncode,
    }


def _flag(key: str, value: Any) -> str:
    """A run setting as `deepernets study` takes it: --epochs=1, or --cuda-graphs / --no-cuda-graphs."""
    name = key.replace("_", "-")
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name}={value}"


def run_summaries(folder: Path) -> list[dict[str, Any]]:
    """SUMMARY_KEYS of each run in the study folder that has a summary, in name order."""
    summaries = (RunDir(path.parent).read_summary() for path in sorted(folder.glob("*/summary.json")))
    return [{key: s.get(key) for key in SUMMARY_KEYS} for s in summaries if s is not None]


def done(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that ended (finished or diverged): a restart skips them."""
    return [r for r in runs if r["status"] in DONE]
