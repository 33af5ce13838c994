"""Studies: a grid of RunConfigs from a YAML file, run restartably and shardable across processes or machines.

A grid file has `base` settings, `axes` (RunConfig fields, plus `policy`, whose values name bundles of
settings under `policies`), and `seeds`. Each cell is a run folder under the study folder; finished and
diverged runs are skipped, interrupted ones resumed, and a per-run lock keeps two workers off the same run.
A policy with `lr: auto` takes its LR from one LR range test per dataset, model and optimizer, recorded
under `lr_finder/`.

shipped   the shipped presets: grids and training recipes
grid      the Grid declaration, its YAML file, its expansion into planned runs, shards
plan      the study folder and study.json, the plan a report reads
auto_lr   `lr: auto`: one shared LR range test per key
runner    run_study: the runs in order, skip, resume, record failures
jobs      a study as N processes at once on one machine, sharing its runs (each job: __main__)
probe     the speed probe: a few timed steps of a run's setup, alone or as N jobs at once
estimate  the dry run: how long each run should take here
budget    a study sized to a time budget: every subset scaled by one measured factor

The modules import the training code only inside the functions that train, since importing it takes seconds.
"""

from deepernets.study.estimate import dry_run
from deepernets.study.grid import OVERRIDES, Grid, PlannedRun, expand, load_grid, parse_shard
from deepernets.study.jobs import run_jobs
from deepernets.study.plan import default_folder, write_manifest
from deepernets.study.runner import run_study
from deepernets.study.shipped import grid_names, run_preset_names, run_preset_path

__all__ = [
    "OVERRIDES", "Grid", "PlannedRun", "default_folder", "dry_run", "expand", "grid_names", "load_grid",
    "parse_shard", "run_jobs", "run_preset_names", "run_preset_path", "run_study", "write_manifest",
]  # fmt: skip
