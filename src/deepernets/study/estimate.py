"""How long a study's runs should take here (`deepernets study --dry-run`), from a short probe of the speed."""

import math
from collections.abc import Callable
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
    train_images: int
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
    from deepernets.train.device import device_description, resolve_device  # training's imports take seconds

    planned = expand(grid, study_dir, overrides, seeds)[shard[0] :: shard[1]]
    seconds = estimate(planned, grid, probe)
    device = device_description(resolve_device(overrides.get("device", "auto")))
    log(f"study {grid.name}: {len(planned)} runs into {study_dir} (estimates from a short probe on {device})")
    for run, t in zip(planned, seconds, strict=True):
        status = RunDir(study_dir / run.name).status() or ""
        c = run.config
        log(f"  {run.name:<45} {c.epochs:>3} ep  lr {c.lr!s:<6} {c.schedule:<9} ~{duration(t):>8}  {status}")
    log(f"total ~{duration(sum(seconds))} on this device")


def probe(config: RunConfig) -> Probe:
    """Time a few training steps of the run's model on its data."""
    from deepernets.train.setup import build_local_parts
    from deepernets.train.speed import measure_speed

    fixed = config.replace(lr=0.01)  # `lr: auto` needs no range test just to time a few steps
    parts, precision = build_local_parts(fixed)
    speed = measure_speed(parts, fixed, precision)
    return Probe(speed, len(parts.train_batches) * config.batch_size, parts.test_count)


def estimate(planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe]) -> list[float]:
    """Seconds each run should take here: epochs × (train + test images) at the probed training speed.

    Evaluation is counted at three times the training speed (forward only). The first run of each LR-finder
    key also carries that range test. Runs that train alike share one probe.
    """
    probes: dict[tuple, Probe] = {}
    finders: set[str] = set()
    seconds = []
    for run in planned:
        c = run.config
        key = (c.model, c.dataset, c.subset, c.test_subset, c.batch_size, c.precision, str(c.model_options))
        if key not in probes:
            probes[key] = probe(c)
        p = probes[key]
        t = c.epochs * (p.train_images + p.test_images / 3) / p.images_per_s
        if c.lr == "auto" and lr_finder_key(c) not in finders:
            finders.add(lr_finder_key(c))
            t += grid.lr_finder_steps * c.batch_size / p.images_per_s
        seconds.append(t)
    return seconds


def duration(seconds: float) -> str:
    """1h05m, 3m20s, or "estimating" before there is anything to estimate from."""
    if not math.isfinite(seconds):
        return "estimating"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{secs:02}s"
