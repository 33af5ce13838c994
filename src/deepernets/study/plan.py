"""The study folder and its plan, study.json: every run the folder should hold, with its cell and settings."""

import dataclasses
from pathlib import Path
from typing import Any

from deepernets.config import WHERE_SETTINGS, absolute_folder
from deepernets.errors import UserError
from deepernets.run import atomic, locks
from deepernets.study.budget import seconds
from deepernets.study.grid import Grid, PlannedRun

QUICK_SETTINGS = ("epochs", "subset", "test_subset")  # overrides that make a quick version of a study


def default_folder(grid: Grid, overrides: dict[str, Any], file_budget: str | None) -> Path:
    """runs/GRID, or for a quick version runs/GRID-e3-s5000, and runs/GRID-b30m for a budget other than the one in
    the grid's file (`file_budget`): it never collides with the full study's runs, nor with runs sized to another
    budget."""
    suffix = "".join(f"-{key[0]}{overrides[key]}" for key in QUICK_SETTINGS if key in overrides)
    if grid.budget and not (file_budget and seconds(grid.budget) == seconds(file_budget)):
        suffix += f"-b{grid.budget}"
    return Path("runs") / f"{grid.name}{suffix}"


def write_manifest(
    grid: Grid, study_dir: Path, planned: list[PlannedRun], overrides: dict[str, Any] | None = None
) -> None:
    """Add the planned runs to study.json, the plan a report reads to name each run's cell and the missing runs.

    The plan accumulates: runs that an earlier invocation planned (other seeds, another grid) stay in it, so a
    report never loses track of them. A run name planned again with other settings is refused, since its folder
    would then hold a run that is not the one planned. Workers starting together merge under one lock. The
    command line's overrides of what the runs compute are kept too: the grid's `about` does not know them.
    """
    path = study_dir / "study.json"
    with locks.lock(study_dir / ".study.lock"):
        study = atomic.read_json(path) if path.exists() else {"runs": []}
        entries = {e["name"]: e for e in study["runs"]}
        overridden = {**study.get("overrides", {}), **{k: v for k, v in (overrides or {}).items()
                                                         if k not in WHERE_SETTINGS}}  # fmt: skip
        for run in planned:
            settings = {k: v for k, v in run.config.to_dict().items() if k not in WHERE_SETTINGS}
            old = entries.get(run.name, {}).get("config") or {}  # plans before settings were recorded have none
            if "dataset" in old:  # older plans hold a folder dataset's path as typed
                old = {**old, "dataset": absolute_folder(old["dataset"])}
            # a setting that one version of deepernets has and the other lacks is not a difference
            changed = [k for k in settings if k in old and old[k] != settings[k]]
            if changed:
                raise UserError(
                    f"{path} already plans {run.name} with other settings ({', '.join(changed)}): "
                    "give this version of the study a folder of its own (--runs-dir)"
                )
            entries[run.name] = {"name": run.name, "cell": run.cell, "config": settings}
        atomic.write_json(
            path, {"grid": dataclasses.asdict(grid), "overrides": overridden, "runs": list(entries.values())}
        )
