"""A study sized to a time budget (`budget: 15m` in a grid, or `--budget`): every run's training subset is scaled by
one factor, chosen from a short probe of the speed here, so that the whole study should take that long on this
machine. The factor is kept in the study folder's budget.json, so a restarted study plans the same runs."""

import contextlib
import hashlib
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

from deepernets.config import RunConfig, shortfall
from deepernets.errors import UserError
from deepernets.run import atomic, locks
from deepernets.study.estimate import RUN_OVERHEAD_S, estimate_parts
from deepernets.study.grid import TIME, Grid, PlannedRun
from deepernets.study.probe import Probe

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def seconds(budget: str) -> float:
    """900, 900s, 15m or 1.5h as seconds (the grid's declaration has already checked the form)."""
    number, unit = re.fullmatch(TIME, budget).groups()
    return float(number) * UNITS[unit]


def fit(
    planned: list[PlannedRun],
    grid: Grid,
    study_dir: Path,
    probe: Callable[[RunConfig], Probe],
    log: Callable[[str], None],
    save: bool = True,
) -> list[PlannedRun]:
    """The planned runs with their subsets scaled to fit `grid.budget` here; unchanged when there is no budget.

    The factor is measured once per study folder and budget; `save=False` (a dry run) measures without keeping it.
    """
    if not grid.budget:
        return planned
    path = study_dir / "budget.json"
    # a dry run (save=False) writes nothing, not even the study folder that the lock would create
    with locks.lock(study_dir / ".budget.lock") if save else contextlib.nullcontext():
        kept = atomic.read_json(path) if path.exists() else {}
        plan = hashlib.sha256(" ".join(sorted(p.name for p in planned)).encode()).hexdigest()[:16]
        if kept.get("plan", plan) != plan and save:  # budget.json files of older versions have no plan
            raise UserError(
                f"{study_dir} holds other runs (another grid, or other seeds) sized to its budget of "
                f"{kept['budget']}: give these a folder of their own (--runs-dir)"
            )
        if kept and seconds(kept["budget"]) == seconds(grid.budget):  # 780s is 13m
            factor, enough_s = kept["factor"], kept.get("enough_s")
        elif kept and save:
            raise UserError(
                f"{study_dir} holds a study sized to a budget of {kept['budget']}: run it with that budget, "
                f"or give a budget of {grid.budget} a folder of its own (--runs-dir)"
            )
        else:
            factor, enough_s = _measure_factor(planned, grid, probe, log)
            if save:
                kept = {
                    "budget": grid.budget,
                    "plan": plan,  # the runs sized: other runs need a factor of their own
                    "factor": factor,
                    "enough_s": enough_s,
                    "time": time.strftime("%Y-%m-%d"),
                }
                atomic.write_json(path, kept)
    sized = [scaled(run, factor) for run in planned]
    images = sorted({(r.config.dataset, r.config.subset) for r in sized})
    log(f"budget {grid.budget}: training subsets ×{factor:.2f}: " + ", ".join(f"{d} {n:,}" for d, n in images))
    short = shortfall(grid.enough_images, images)
    if short and enough_s:
        log(
            f"budget {grid.budget}: fewer training images than its cells need to be clearly above chance ({short}): "
            f"a budget of about {math.ceil(enough_s / 60)}m would give them here (--budget)"
        )
    return sized


def _measure_factor(
    planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe], log: Callable[[str], None]
) -> tuple[float, float]:
    """The factor that fits the budget, and the seconds a budget needs for the grid's `enough_images` here."""
    if any(run.config.subset is None for run in planned):
        raise UserError(f"grid {grid.name}: a budget scales each run's subset, so every run needs one (base: subset)")
    log(f"budget {grid.budget}: probing the speed of each model here")
    started = time.time()
    parts = estimate_parts(planned, grid, probe)
    # the jobs share the runs (a probe of jobs already counts how they slow each other down)
    jobs = grid.jobs_at_once(len(planned))
    left = seconds(grid.budget) - (time.time() - started) - RUN_OVERHEAD_S * len(planned) / jobs
    left -= sum(other for _, other in parts) / jobs
    training = sum(train for train, _ in parts) / jobs
    if left <= 0.05 * training:
        minutes = math.ceil((training * 0.05 + seconds(grid.budget) - left) / 60)
        raise UserError(
            f"budget {grid.budget} is too short for study {grid.name} here: give it at least {minutes}m "
            "(budget: in the grid, or --budget)"
        )
    enough = max((grid.enough_images.get(r.config.dataset, 0) / r.config.subset for r in planned), default=0.0)
    return left / training, seconds(grid.budget) + (enough - left / training) * training


def scaled(run: PlannedRun, factor: float) -> PlannedRun:
    """The run with its subset scaled, in whole hundreds of images and never below one batch."""
    subset = max(run.config.batch_size, round(run.config.subset * factor, -2))
    return PlannedRun(run.name, run.cell, run.config.replace(subset=int(subset)))
