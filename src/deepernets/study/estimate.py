"""How long a study's runs should take here (`deepernets study --dry-run`), from a short probe of the speed."""

import contextlib
import math
import multiprocessing
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepernets.config import RunConfig
from deepernets.run.folder import RunDir
from deepernets.study.auto_lr import lr_finder_key
from deepernets.study.grid import Grid, PlannedRun, expand


@dataclass
class Probe:
    images_per_s: float  # training speed measured over a few real steps
    split_images: int  # the whole training split: a larger subset is all of it
    test_images: int


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
    from deepernets.train.device import device_description, resolve_device  # training's imports take seconds

    with probing(grid.jobs) as probe_once:
        planned = budget.fit(expand(grid, study_dir, overrides, seeds), grid, study_dir, probe_once, log, save=False)
        planned = planned[shard[0] :: shard[1]]
        seconds = estimate(planned, grid, probe_once)
    device = device_description(resolve_device(overrides.get("device", "auto")))
    log(f"study {grid.name}: {len(planned)} runs into {study_dir} (estimates from a short probe on {device})")
    for run, t in zip(planned, seconds, strict=True):
        status = RunDir(study_dir / run.name).status() or ""
        c = run.config
        log(f"  {run.name:<45} {c.epochs:>3} ep  lr {c.lr!s:<6} {c.schedule:<9} ~{duration(t):>8}  {status}")
    at_once = f" as {grid.jobs} jobs at once" if grid.jobs > 1 else ""
    log(f"total ~{duration(sum(seconds) / grid.jobs)} on this device{at_once}")


def probe(config: RunConfig, ready: Callable[[], object] = lambda: None) -> Probe:
    """Time a few training steps of the run's model on its data; `ready` is called just before the timing starts."""
    from deepernets.train.setup import build_local_parts
    from deepernets.train.speed import measure_speed

    fixed = config.replace(lr=0.01)  # `lr: auto` needs no range test just to time a few steps
    parts, precision = build_local_parts(fixed)
    ready()
    # 4 warm-up steps: the first ones of a process run slow (measured: 341 against 450 img/s after 2 only)
    speed = measure_speed(parts, fixed, precision, steps=10, warmup=4)
    return Probe(speed, len(parts.dataset.train_labels), parts.test_count)


@contextlib.contextmanager
def probing(jobs: int) -> Iterator[Callable[[RunConfig], Probe]]:
    """The probe as a study of `jobs` jobs trains: in `jobs` processes at once, on the threads each job gets, timing
    together; their speeds averaged. Jobs slow each other down (they share caches and memory bandwidth), so a probe
    alone would promise more than they give. Each configuration is probed once (see `cached`)."""
    if jobs == 1:
        yield cached(probe)
        return
    context = multiprocessing.get_context("spawn")  # forking a process that has started torch's threads is unsafe
    start_together = context.Barrier(jobs)
    with context.Pool(jobs, _start_probe_job, (threads_per_job(jobs), start_together)) as pool:

        def probe_together(config: RunConfig) -> Probe:
            probes = pool.map(_probe_when_all_are_ready, [config] * jobs, chunksize=1)
            speed = statistics.mean(p.images_per_s for p in probes)
            return Probe(speed, probes[0].split_images, probes[0].test_images)

        yield cached(probe_together)


def threads_per_job(jobs: int) -> int:
    """Each of `jobs` jobs gets an equal share of the threads torch would use here, at least one."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


_start_together = None  # in a probe job's process: the barrier all probe jobs time from


def _start_probe_job(threads: int, start_together: object) -> None:
    global _start_together
    import torch

    from deepernets.train.cpu_speed import keep_freed_memory_mapped

    keep_freed_memory_mapped()  # as the deepernets command does in every job
    torch.set_num_threads(threads)
    _start_together = start_together


def _probe_when_all_are_ready(config: RunConfig) -> Probe:
    return probe(config, ready=_start_together.wait)


def cached(probe: Callable[[RunConfig], Probe]) -> Callable[[RunConfig], Probe]:
    """The probe, run once for all the runs that train alike (a subset changes how long, not how fast)."""
    probes: dict[tuple, Probe] = {}

    def probe_once(c: RunConfig) -> Probe:
        key = (c.model, c.dataset, c.image_size, c.test_subset, c.batch_size, c.precision, str(c.model_options))
        if key not in probes:
            probes[key] = probe(c)
        return probes[key]

    return probe_once


def estimate(planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe]) -> list[float]:
    """Seconds each run should take here: its training plus everything else (see `estimate_parts`)."""
    return [train + other for train, other in estimate_parts(planned, grid, probe)]


def estimate_parts(
    planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe]
) -> list[tuple[float, float]]:
    """Each run's seconds here in two parts: training (epochs × training images at the probed speed), and the rest.

    The rest is evaluation and the batch-norm statistics recomputed before it (`precise_bn`), both counted at three
    times the training speed (forward only), and, for the first run of each LR-finder key, that range test. Pass a
    `cached` probe, so that runs that train alike share one.
    """
    finders: set[str] = set()
    parts = []
    for run in planned:
        c = run.config
        p = probe(c)
        train_images = min(c.subset or p.split_images, p.split_images) // c.batch_size * c.batch_size
        batches = min(c.precise_bn, train_images // c.batch_size)
        other = c.epochs * (p.test_images + batches * c.batch_size) / 3 / p.images_per_s
        if c.lr == "auto" and lr_finder_key(c) not in finders:
            finders.add(lr_finder_key(c))
            other += grid.lr_finder_steps * c.batch_size / p.images_per_s
        parts.append((c.epochs * train_images / p.images_per_s, other))
    return parts


def duration(seconds: float) -> str:
    """1h05m, 3m20s, or "estimating" before there is anything to estimate from."""
    if not math.isfinite(seconds):
        return "estimating"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{secs:02}s"
