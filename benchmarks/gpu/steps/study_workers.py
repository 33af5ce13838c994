"""Step study-workers: one slice of the seed grid with each of the plan's worker counts, each on a fresh folder
and an equal share of the time left; the count that finished the most runs per hour is the study step's."""

import shutil
import time
from typing import Any

from deepernets.study import expand, load_grid
from gpu.context import Sitting
from gpu.workers import grid_file, run_workers


def run(sitting: Sitting, until: float) -> dict[str, Any]:
    plan = sitting.plan
    grid = grid_file(sitting, "seed", "probe-grid", plan.probe_axes, None)
    runs = len(expand(load_grid(str(grid)), sitting.work, plan.probe_overrides))
    trials, status = [], "done"
    counts = plan.worker_counts
    for k, n in enumerate(counts):
        share = (until - time.monotonic()) / (len(counts) - k)  # an equal share of what is left
        if share <= 5:
            trials.append({"workers": n, "status": "skipped: out of time"})
            status = "partial: out of time"
            continue
        folder = sitting.work / f"probe-n{n}"
        if folder.exists():
            shutil.rmtree(folder)
        sitting.say(f"  {n} worker(s) on {runs} runs (up to {share:.0f} s)")
        trial = run_workers(sitting, grid, folder, n, plan.probe_overrides, time.monotonic() + share)
        trials.append(trial)
        sitting.say(
            f"  {n} worker(s): {trial['runs_finished']} of {runs} runs in {trial['wall_s']:.0f} s, "
            f"{trial['runs_per_hour']:.0f} runs/h"
        )
        if trial["out_of_time"]:
            status = "partial: out of time"
    measured = [t for t in trials if t.get("runs_finished")]
    best = max(measured, key=lambda t: t["runs_per_hour"])["workers"] if measured else None
    result = {
        "status": status,
        "slice": {"axes": plan.probe_axes, "overrides": plan.probe_overrides, "runs": runs},
        "trials": trials,
        "best_workers": best,
    }
    sitting.write(f"study-{sitting.kind}.json", {"study_workers": result})  # a fresh file: the study step adds to it
    return result
