"""How long a study's runs should take here (`deepernets study --dry-run`), from a short probe of the speed."""

import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from deepernets.config import RunConfig
from deepernets.run.folder import RunDir
from deepernets.study.auto_lr import finished_range_tests, lr_finder_key
from deepernets.study.grid import Grid, PlannedRun, expand
from deepernets.study.probe import Probe, jobs_description, probing

# Seconds each run takes besides its training and evaluation steps: building the model, writing its folder, its
# plots and its checkpoint. Measured on the 2-core Xeon: about 2 s; counted generously.
RUN_OVERHEAD_S = 3.0


def dry_run(
    grid: Grid,
    study_dir: Path,
    overrides: dict[str, Any],
    seeds: int | None,
    shard: tuple[int, int],
    log: Callable[[str], None] = print,
) -> None:
    """List this shard's runs with the time each should take here, and their status if they have one."""
    from deepernets.study import budget
    from deepernets.study.runner import check_setup  # runner imports this module
    from deepernets.train.device import device_description, resolve_device  # training's imports take seconds

    planned = expand(grid, study_dir, overrides, seeds)
    check_setup(planned)  # the data every probe reads, loaded (or downloaded) once
    jobs = grid.jobs_at_once(len(planned[shard[0] :: shard[1]]))  # as many as this shard starts
    with probing(jobs) as probe_once:
        planned = budget.fit(planned, grid, study_dir, probe_once, log, save=False)
        planned = planned[shard[0] :: shard[1]]
        seconds = estimate(planned, grid, probe_once, finished_range_tests(study_dir))
    device = device_description(resolve_device(overrides.get("device", "auto")))
    if jobs > 1:
        device += f" as {jobs_description(jobs)}"
    log(f"study {grid.name}: {len(planned)} runs into {study_dir} (estimates from a short probe on {device})")
    for run, t in zip(planned, seconds, strict=True):
        status = RunDir(study_dir / run.name).status() or ""
        c = run.config
        log(f"  {run.name:<45} {c.epochs:>3} ep  lr {c.lr!s:<6} {c.schedule:<9} ~{duration(t):>8}  {status}")
    at_once = f" as {jobs} jobs at once" if jobs > 1 else ""
    log(f"total ~{duration(sum(seconds) / jobs)} on this device{at_once}")


def estimate(
    planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe], range_tests_done: Collection[str]
) -> list[float]:
    """Seconds each run should take here: its training plus everything else (see `estimate_parts`)."""
    parts = estimate_parts(planned, grid, probe, range_tests_done)
    return [train + other + RUN_OVERHEAD_S for train, other in parts]


def estimate_parts(
    planned: list[PlannedRun],
    grid: Grid,
    probe: Callable[[RunConfig], Probe],
    range_tests_done: Collection[str] = (),
) -> list[tuple[float, float]]:
    """Each run's seconds here in two parts: training (epochs × training images at the probed speed, the `low_res`
    epochs at the speed probed at that size), and the rest.

    The rest is evaluation and the batch-norm statistics recomputed before it (`precise_bn`), both counted at three
    times the training speed (forward only) and twice with `ema` (the averaged model is tested too, after its own
    statistics), with the mirrored test images of `tta: flip`; and, for the first run of each LR-finder key, that
    range test, unless it is in `range_tests_done`. Pass a `cached` probe, so that runs that train alike share one.
    """
    finders = set(range_tests_done)
    parts = []
    for run in planned:
        c = run.config
        p = probe(c)
        train_images = min(c.subset or p.split_images, p.split_images) // c.batch_size * c.batch_size
        batches = min(c.precise_bn, train_images // c.batch_size)
        models_tested = 1 + bool(c.ema)
        test_passes = models_tested + (c.tta == "flip")
        forward = test_passes * p.test_images + models_tested * batches * c.batch_size
        other = c.epochs * forward / 3 / p.images_per_s
        if c.lr == "auto" and lr_finder_key(c) not in finders:
            finders.add(lr_finder_key(c))
            other += grid.lr_finder_steps * c.batch_size / p.images_per_s
        training = (c.epochs - c.low_res_epochs) * train_images / p.images_per_s
        if c.low_res:  # the first epochs train on smaller images, at a speed of their own
            training += c.low_res_epochs * train_images / p.low_res_images_per_s
        parts.append((training, other))
    return parts


def duration(seconds: float) -> str:
    """1h05m, 3m20s, or "estimating" before there is anything to estimate from."""
    if not math.isfinite(seconds):
        return "estimating"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{secs:02}s"
