"""Run a study: this shard's runs in order, skipping finished ones, resuming broken ones, recording failures."""

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepernets import data
from deepernets.errors import UserError
from deepernets.run import atomic, locks
from deepernets.run.folder import DONE, RunDir
from deepernets.study import budget, probe
from deepernets.study.auto_lr import resolve_lr
from deepernets.study.estimate import duration
from deepernets.study.grid import Grid, PlannedRun, expand
from deepernets.study.plan import write_manifest
from deepernets.train.device import check_cuda_graphs, resolve_device, resolve_precision

FAILURE_TIME = "%Y-%m-%d %H:%M:%S"  # local time, as failures.json records it; it sorts as it runs


def run_study(
    grid: Grid,
    study_dir: Path,
    overrides: dict[str, Any],
    *,
    seeds: int | None = None,
    shard: tuple[int, int] = (0, 1),
    log: Callable[[str], None] = print,
    since: str | None = None,
) -> dict[str, int]:
    """Run this shard's share of the grid; return how many runs ended in each state.

    `since` is when this invocation started (FAILURE_TIME), where it runs as several jobs: a run that another of
    them has tried and failed since then is not tried again.
    """
    from deepernets.train import fit  # training's imports take seconds: only when a study runs

    since = since or time.strftime(FAILURE_TIME)

    planned = expand(grid, study_dir, overrides, seeds)
    check_setup(planned[shard[0] :: shard[1]])
    planned = budget.fit(planned, grid, study_dir, probe.cached(probe.probe), log)
    mine = planned[shard[0] :: shard[1]]
    write_manifest(grid, study_dir, planned, overrides)
    counts = {"finished": 0, "diverged": 0, "skipped": 0, "busy": 0, "failed": 0}
    started, trained_time, trained = time.time(), 0.0, 0
    for i, run in enumerate(mine, 1):
        run_dir = RunDir(study_dir / run.name)
        # held until a failure is recorded, so that another job of the study sees the run as finished or failed
        with locks.try_lock(run_dir.lock_path) as locked:
            if not locked:
                counts["busy"] += 1
                log(f"[{i}/{len(mine)}] {run.name}: another worker is running it, skipped")
                continue
            if run_dir.status() in DONE:
                counts["skipped"] += 1
                continue
            if failed_since(study_dir, run.name, since):
                counts["failed"] += 1
                log(f"[{i}/{len(mine)}] {run.name} failed in another job of this study (see failures.json)")
                continue
            # the runs left in this list, shared with any other jobs of the study on this machine
            left = (len(mine) - i + 1) * trained_time / trained / grid.jobs_at_once(len(mine)) if trained else math.nan
            log(f"[{i}/{len(mine)}] {run.name} | elapsed {duration(time.time() - started)} | left {duration(left)}")
            whole = not run_dir.checkpoint_path.exists()  # only whole runs tell the time a run takes
            run_started = time.time()
            try:
                config, lr_finder = resolve_lr(run.config, study_dir, grid.lr_finder_steps, log)
                summary = fit.train(config, resume=True, log=log, lr_finder=lr_finder, locked=True)
            except Exception as e:  # one bad cell must not stop the others: record it, go on, retry it next time
                counts["failed"] += 1
                error = " ".join(str(e).split()) or type(e).__name__
                if not isinstance(e, UserError):  # a bug: name the exception so it can be found
                    error = f"{type(e).__name__}: {error}"
                record_failure(study_dir, run.name, error)
                log(f"[{i}/{len(mine)}] {run.name} failed: {error}")
                continue
            record_failure(study_dir, run.name, None)
        if whole:
            trained_time += time.time() - run_started
            trained += 1
        counts[summary.get("status", "finished")] += 1
    log(
        f"study {grid.name}: {counts['finished']} finished, {counts['diverged']} diverged, {counts['failed']} failed, "
        f"{counts['skipped']} already done, {counts['busy']} run by another worker; "
        f"{duration(time.time() - started)}; results in {study_dir}"
    )
    return counts


def check_setup(planned: list[PlannedRun]) -> None:
    """Check the device settings and load every dataset the runs need before the first run starts: a setting this
    machine cannot run (--cuda-graphs without a GPU) or a missing or corrupt dataset stops the study once, with one
    line, instead of failing every run in turn."""
    for device_name, precision, cuda_graphs in dict.fromkeys(
        (p.config.device, p.config.precision, p.config.cuda_graphs) for p in planned
    ):
        device = resolve_device(device_name)
        resolve_precision(precision, device)
        check_cuda_graphs(cuda_graphs, device)
    for dataset, data_dir, download, size in dict.fromkeys(
        (p.config.dataset, p.config.data_dir, p.config.download, p.config.image_size) for p in planned
    ):
        data.load(dataset, data_dir, download, size)


def failed_since(study_dir: Path, name: str, since: str) -> bool:
    path = study_dir / "failures.json"
    failure = atomic.read_json(path).get(name) if path.exists() else None
    return failure is not None and failure["time"] >= since


def record_failure(study_dir: Path, name: str, error: str | None) -> None:
    """failures.json: the last error of each run that failed and has not finished since (the report lists them)."""
    path = study_dir / "failures.json"
    with locks.lock(study_dir / ".failures.lock"):
        failures = atomic.read_json(path) if path.exists() else {}
        if error is None and name not in failures:
            return
        if error is None:
            del failures[name]
        else:
            failures[name] = {"error": error, "time": time.strftime(FAILURE_TIME)}
        atomic.write_json(path, failures)
