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
            factor, enough_s, splits = kept["factor"], kept.get("enough_s"), kept.get("splits", {})
        elif kept and save:
            raise UserError(
                f"{study_dir} holds a study sized to a budget of {kept['budget']}: run it with that budget, "
                f"or give a budget of {grid.budget} a folder of its own (--runs-dir)"
            )
        else:
            factor, enough_s, splits = _measure_factor(planned, grid, probe, log)
            if save:
                kept = {
                    "budget": grid.budget,
                    "plan": plan,  # the runs sized: other runs need a factor of their own
                    "factor": factor,
                    "enough_s": enough_s,
                    "splits": splits,  # each dataset's training images: no run is sized beyond them
                    "time": time.strftime("%Y-%m-%d"),
                }
                atomic.write_json(path, kept)
    sized = [scaled(run, factor, splits.get(run.config.dataset)) for run in planned]
    images = sorted({(r.config.dataset, r.config.subset) for r in sized})
    described = [f"{d} {n:,}" + (" (all of them)" if n == splits.get(d) else "") for d, n in images]
    log(f"budget {grid.budget}: training subsets ×{factor:.2f}: " + ", ".join(described))
    short = shortfall(grid.enough_images, images)
    if short and enough_s:
        log(
            f"budget {grid.budget}: fewer training images than its cells need to be clearly above chance ({short}): "
            f"a budget of about {math.ceil(enough_s / 60)}m would give them here (--budget)"
        )
    return sized


def _measure_factor(
    planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe], log: Callable[[str], None]
) -> tuple[float, float, dict[str, int]]:
    """The factor that fits the budget, the seconds a budget needs for the grid's `enough_images` here, and each
    dataset's training images."""
    if any(run.config.subset is None for run in planned):
        raise UserError(f"grid {grid.name}: a budget scales each run's subset, so every run needs one (base: subset)")
    log(f"budget {grid.budget}: probing the speed of each model here")
    started = time.time()
    parts = estimate_parts(planned, grid, probe)
    splits = {run.config.dataset: probe(run.config).split_images for run in planned}  # the probes are cached
    # each run's training seconds per image of its planned subset, and the images it can have at most
    costs = [(train / min(r.config.subset, splits[r.config.dataset]), r.config.subset, splits[r.config.dataset])
             for r, (train, _) in zip(planned, parts, strict=True)]  # fmt: skip
    # the jobs share the runs (a probe of jobs already counts how they slow each other down)
    jobs = grid.jobs_at_once(len(planned))
    left = seconds(grid.budget) - (time.time() - started) - RUN_OVERHEAD_S * len(planned) / jobs
    left -= sum(other for _, other in parts) / jobs

    def training(factor: float) -> float:
        return sum(cost * min(subset * factor, split) for cost, subset, split in costs) / jobs

    if left <= 0.05 * training(1.0):
        minutes = math.ceil((training(1.0) * 0.05 + seconds(grid.budget) - left) / 60)
        raise UserError(
            f"budget {grid.budget} is too short for study {grid.name} here: give it at least {minutes}m "
            "(budget: in the grid, or --budget)"
        )
    enough = max((grid.enough_images.get(r.config.dataset, 0) / r.config.subset for r in planned), default=0.0)
    return _factor_for(left, training, costs), seconds(grid.budget) - left + training(enough), splits


def _factor_for(left: float, training: Callable[[float], float], costs: list[tuple[float, int, int]]) -> float:
    """The factor whose training takes `left` seconds, where a run given all its dataset's images takes no more:
    the time a dataset cannot use goes to the runs of the others. Training rises with the factor in straight
    pieces, one bend at each run's cap, so the factor is found within the piece that holds it."""
    caps = sorted({split / subset for _, subset, split in costs})
    below = 0.0
    for cap in caps:
        if training(cap) >= left:  # the straight piece from `below` to `cap` holds the factor
            return below + (left - training(below)) * (cap - below) / (training(cap) - training(below))
        below = cap
    return caps[-1]  # every run gets all its images, in less time than the budget


def scaled(run: PlannedRun, factor: float, split: int | None = None) -> PlannedRun:
    """The run with its subset scaled, in whole hundreds of images, never below one batch nor beyond `split`, the
    training images its dataset has (budget.json files of older versions have none)."""
    subset = max(run.config.batch_size, round(run.config.subset * factor, -2))
    subset = min(subset, split or subset)
    return PlannedRun(run.name, run.cell, run.config.replace(subset=int(subset)))
