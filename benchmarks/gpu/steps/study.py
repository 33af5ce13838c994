"""Step study: a shipped study (the plan's study_grid: seed, or cifar10-recipe) with the best worker count,
CIFAR-10 first, until the deadline; restartable from an earlier sitting's archive. Its run folders come back as
GRID-runs.tar.gz, its record in study-KIND.json."""

import json
from pathlib import Path
from typing import Any

from deepernets.study import expand, load_grid
from gpu.archive import pack_runs, unpack_runs
from gpu.context import Sitting
from gpu.workers import done, grid_file, run_summaries, run_workers


def run(sitting: Sitting, until: float, workers: int | None, resume_from: Path | None) -> dict[str, Any]:
    plan = sitting.plan
    probed = sitting.steps.get("study-workers", {}).get("best_workers")
    n = workers or probed or 1
    chosen_by = "--workers" if workers else "the study-workers step" if probed else "default: no probe result"
    grid = grid_file(sitting, plan.study_grid, plan.study_grid, plan.study_axes, plan.lr_finder_steps)
    folder = sitting.work / plan.study_grid
    restored = unpack_runs(resume_from, folder) if resume_from else 0
    planned = expand(load_grid(str(grid)), folder, plan.study_overrides)
    sitting.say(
        f"  {n} worker(s) on {len(planned)} runs, {planned[0].config.dataset} first"
        + (f"; {restored} finished runs restored from {resume_from}" if resume_from else "")
    )
    trial = run_workers(sitting, grid, folder, n, plan.study_overrides, until)
    runs = run_summaries(folder)
    finished = done(runs)
    archive = sitting.out / f"{plan.study_grid}-runs.tar.gz"
    files = pack_runs(folder, archive)
    in_progress = [r for r in runs if r not in finished]
    result = {
        "status": "stopped: out of time" if trial["out_of_time"] else "done",
        "grid": plan.study_grid,
        "workers": n,
        "chosen_by": chosen_by,
        "planned_runs": len(planned),
        "restored_runs": restored,
        "finished_runs": len(finished),
        "in_progress_when_stopped": [
            {"name": r["name"], "epochs_completed": r["epochs_completed"]} for r in in_progress
        ],
        "runs": runs,
        "archive": archive.name,
        "archived_files": files,
        "trial": trial,
    }
    path = sitting.out / f"study-{sitting.kind}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    sitting.write(path.name, {**previous, "study": result})
    return result
