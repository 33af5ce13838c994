"""Studies: a grid of RunConfigs from a YAML file, run restartably and shardable across processes or machines.

A grid file has `base` settings, `axes` (RunConfig fields, plus `policy`, whose values name bundles of
settings under `policies`), and `seeds`. Each cell is a run folder under the study folder; finished and
diverged runs are skipped, interrupted ones resumed, and a per-run lock keeps two workers off the same run.
A policy with `lr: auto` takes its LR from one LR range test per dataset, model and optimizer, recorded
under `lr_finder/`.
"""

import dataclasses
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from deepernets.config import RunConfig, dataset_slug, load_yaml
from deepernets.errors import UserError
from deepernets.run import atomic, locks
from deepernets.run.folder import RunDir

DONE = ("finished", "diverged")
# Settings that change what the LR range test sees; cells that share them share one test.
LR_FINDER_SETTINGS = ("dataset", "model", "model_options", "optimizer", "batch_size", "subset", "image_size",
                      "momentum", "nesterov", "weight_decay", "label_smoothing", "precision", "lr_pick")  # fmt: skip
# The range test trains on augmented batches too; these count only when on, so earlier studies keep their keys.
LR_FINDER_AUGMENTATION = ("cutout", "mixup", "cutmix")
LR_FINDER_STEPS = 100


@dataclass
class Grid:
    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: int = 1
    lr_finder_steps: int = LR_FINDER_STEPS


@dataclass
class PlannedRun:
    name: str
    cell: dict[str, Any]  # the axis values, policy and seed that make this run
    config: RunConfig


def preset_names() -> list[str]:
    return sorted(
        p.name[:-5] for p in resources.files("deepernets.study.presets").iterdir() if p.name.endswith(".yaml")
    )


def load_grid(name_or_path: str) -> Grid:
    """A shipped preset by name, or a grid YAML file by path."""
    if name_or_path in preset_names():
        path = Path(str(resources.files("deepernets.study.presets") / f"{name_or_path}.yaml"))
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise UserError(f"no study preset or grid file '{name_or_path}'; presets: {', '.join(preset_names())}")
    values = load_yaml(path)
    known = {f.name for f in dataclasses.fields(Grid)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{path}: unknown grid key(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(known))}")
    values.setdefault("name", path.stem)
    for key in ("base", "axes", "policies"):
        if not isinstance(values.get(key, {}), dict):
            raise UserError(f"{path}: '{key}' must be a mapping")
    grid = Grid(**values)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for axis, values_ in grid.axes.items():
        if axis != "policy" and axis not in fields:
            raise UserError(
                f"{path}: axis '{axis}' is not a run setting; valid ones: policy, {', '.join(sorted(fields))}"
            )
        if not isinstance(values_, list) or not values_:
            raise UserError(f"{path}: axis '{axis}' needs a non-empty list of values")
    from deepernets.train.lr_finder import MIN_POINTS

    if grid.lr_finder_steps < MIN_POINTS:
        raise UserError(
            f"{path}: lr_finder_steps {grid.lr_finder_steps} is too few for the range test to mean anything; "
            f"use at least {MIN_POINTS} (100 is the default)"
        )
    for policy in grid.axes.get("policy", []):
        if policy not in grid.policies:
            raise UserError(f"{path}: policy '{policy}' is not defined under policies")
    return grid


def expand(grid: Grid, study_dir: Path, overrides: dict[str, Any], seeds: int | None = None) -> list[PlannedRun]:
    """Every run of the grid, in a fixed order, with its complete and validated RunConfig."""
    planned = []
    axes = list(grid.axes)
    for values in itertools.product(*grid.axes.values()):
        for seed in range(seeds or grid.seeds):
            cell = dict(zip(axes, values, strict=True))
            settings = {**grid.base}
            for axis, value in cell.items():
                settings.update(grid.policies[value] if axis == "policy" else {axis: value})
            settings.update(overrides)
            name = "-".join(dataset_slug(str(v)) for v in values) + f"-s{seed}"
            settings.update(seed=seed, name=name, runs_dir=str(study_dir))
            config = RunConfig.from_dict(settings, f"grid {grid.name}").validate()
            planned.append(PlannedRun(name, {**cell, "seed": seed}, config))
    names = [p.name for p in planned]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise UserError(f"grid {grid.name}: two cells are both named {duplicate}; make the axis values distinct")
    return planned


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/n (for example 0/2), got '{text}'") from None
    if not 0 <= index < count:
        raise UserError(f"--shard {text}: i must be in 0..n-1")
    return index, count


def write_manifest(grid: Grid, study_dir: Path, planned: list[PlannedRun]) -> None:
    """Add the planned runs to study.json, the plan a report reads to name each run's cell and the missing runs.

    The plan accumulates: runs that an earlier invocation planned (other seeds, another grid) stay in it, so a
    report never loses track of them. A run name planned again with other settings is refused, since its folder
    would then hold a run that is not the one planned. Workers starting together merge under one lock.
    """
    from deepernets.train.progress import WHERE_SETTINGS

    path = study_dir / "study.json"
    with locks.lock(study_dir / ".study.lock"):
        entries = {e["name"]: e for e in json.loads(path.read_text())["runs"]} if path.exists() else {}
        for run in planned:
            settings = {k: v for k, v in run.config.to_dict().items() if k not in WHERE_SETTINGS}
            old = entries.get(run.name, {}).get("config") or {}  # plans before settings were recorded have none
            # a setting that one version of deepernets has and the other lacks is not a difference
            changed = [k for k in settings if k in old and old[k] != settings[k]]
            if changed:
                raise UserError(
                    f"{path} already plans {run.name} with other settings ({', '.join(changed)}): "
                    "give this version of the study a folder of its own (--runs-dir)"
                )
            entries[run.name] = {"name": run.name, "cell": run.cell, "config": settings}
        atomic.write_json(path, {"grid": dataclasses.asdict(grid), "runs": list(entries.values())})


def lr_finder_key(config: RunConfig) -> str:
    """dataset-model-optimizer, plus a short hash of every other setting the range test depends on."""
    settings = {k: getattr(config, k) for k in LR_FINDER_SETTINGS}
    settings.update({k: getattr(config, k) for k in LR_FINDER_AUGMENTATION if getattr(config, k)})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{dataset_slug(config.dataset)}-{config.model}-{config.optimizer}-{digest}"


def resolve_lr(
    config: RunConfig, study_dir: Path, steps: int, log: Callable[[str], None]
) -> tuple[RunConfig, dict[str, Any] | None]:
    """Replace `lr: auto` with the LR the finder chose for this dataset, model and optimizer; also return its record.

    The test runs once per key (seed 0), under a lock so that parallel workers wait for one result.
    """
    if config.lr != "auto":
        return config, None
    from deepernets.train.lr_finder_run import find_lr
    from deepernets.train.setup import build_local_parts

    out = study_dir / "lr_finder" / lr_finder_key(config)
    result_path = out / "result.json"
    with locks.lock(out / ".lock"):
        if not result_path.exists():
            probe = config.replace(seed=0, lr=1e-7)
            parts, precision = build_local_parts(probe)
            log(f"LR range test for {lr_finder_key(config)} ({steps} steps)")
            result = find_lr(parts.model, probe, parts.train_batches, precision, out, log, steps=steps)
            atomic.write_json(result_path, {**result, "dataset": config.dataset, "model": config.model,
                                            "optimizer": config.optimizer})  # fmt: skip
    result = json.loads(result_path.read_text())
    return config.replace(lr=result["suggested_lr"]), result


def run_study(
    grid: Grid,
    study_dir: Path,
    overrides: dict[str, Any],
    *,
    seeds: int | None = None,
    shard: tuple[int, int] = (0, 1),
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run this shard's share of the grid; return how many runs ended in each state."""
    from deepernets.train.fit import RunBusy, train

    planned = expand(grid, study_dir, overrides, seeds)
    mine = planned[shard[0] :: shard[1]]
    check_data(mine)
    write_manifest(grid, study_dir, planned)
    counts = {"finished": 0, "diverged": 0, "skipped": 0, "busy": 0, "failed": 0}
    started, trained_time, trained = time.time(), 0.0, 0
    for i, run in enumerate(mine, 1):
        rundir = RunDir(study_dir / run.name)
        if (rundir.read_summary() or {}).get("status") in DONE:
            counts["skipped"] += 1
            continue
        left = (len(mine) - i + 1) * trained_time / trained if trained else math.nan
        log(f"[{i}/{len(mine)}] {run.name} | elapsed {_duration(time.time() - started)} | left {_duration(left)}")
        run_started = time.time()
        try:
            config, lr_finder = resolve_lr(run.config, study_dir, grid.lr_finder_steps, log)
            summary = train(config, resume=True, log=log, lr_finder=lr_finder)
        except RunBusy:
            counts["busy"] += 1
            log(f"[{i}/{len(mine)}] {run.name}: another worker is running it, skipped")
            continue
        except Exception as e:  # one bad cell must not stop the others: record it, go on, retry it next time
            counts["failed"] += 1
            error = " ".join(str(e).split()) or type(e).__name__
            if not isinstance(e, UserError):  # a bug: name the exception so it can be found
                error = f"{type(e).__name__}: {error}"
            record_failure(study_dir, run.name, error)
            log(f"[{i}/{len(mine)}] {run.name} failed: {error}")
            continue
        record_failure(study_dir, run.name, None)
        trained_time += time.time() - run_started
        trained += 1
        counts[summary.get("status", "finished")] += 1
    log(
        f"study {grid.name}: {counts['finished']} finished, {counts['diverged']} diverged, {counts['failed']} failed, "
        f"{counts['skipped']} already done, {counts['busy']} run by another worker; "
        f"{_duration(time.time() - started)}; results in {study_dir}"
    )
    return counts


def check_data(planned: list[PlannedRun]) -> None:
    """Load every dataset the runs need before the first run starts: a missing or corrupt one stops the study once,
    with one line, instead of failing every run in turn."""
    from deepernets.data import load

    for dataset, data_dir, download, size in dict.fromkeys(
        (p.config.dataset, p.config.data_dir, p.config.download, p.config.image_size) for p in planned
    ):
        load(dataset, data_dir, download, size)


def record_failure(study_dir: Path, name: str, error: str | None) -> None:
    """failures.json: the last error of each run that failed and has not finished since (the report lists them)."""
    path = study_dir / "failures.json"
    with locks.lock(study_dir / ".failures.lock"):
        failures = json.loads(path.read_text()) if path.exists() else {}
        if error is None and name not in failures:
            return
        if error is None:
            del failures[name]
        else:
            failures[name] = {"error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic.write_json(path, failures)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "estimating"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{secs:02}s"


@dataclass
class Probe:
    images_per_s: float  # training speed measured over a few real steps
    train_images: int
    test_images: int


def estimate(planned: list[PlannedRun], grid: Grid, probe: Callable[[RunConfig], Probe]) -> list[float]:
    """Seconds each run should take here: epochs × (train + test images) at the probed training speed.

    Evaluation is counted at three times the training speed (forward only). The first run of each LR-finder
    key also carries that range test.
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
