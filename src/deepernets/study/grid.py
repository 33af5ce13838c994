"""A study's grid: its declaration and YAML file, and its expansion into runs with complete, checked settings."""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepernets import settings
from deepernets.config import LRFinderSettings, RunConfig, dataset_slug, load_yaml
from deepernets.errors import UserError
from deepernets.settings import same_as, setting
from deepernets.study import shipped

TIME = r"(\d+(?:\.\d+)?)([smh]?)"  # a budget: seconds, or a number of s, m or h
SET_BY_THE_STUDY = ("seed", "name", "runs_dir")  # run settings that expand() gives each run: never an axis

# The run settings that `deepernets study` may override for every run of a grid: quick versions, and where and how
# to run (compiling and CUDA graphs change the speed, not what a run computes, so a study may resume with or without)
OVERRIDES = ("epochs", "subset", "test_subset", "data_dir", "device", "precision", "compile", "cuda_graphs")


@dataclass
class Grid:
    """Runs over every combination of the axes' values, `seeds` times each (seeds 0..N-1)."""

    name: str = setting("", "the study's name (default: the grid file's name)")
    about: str = setting("", "what the study is, and how it differs from the one it reduces; its report opens with it")
    preset: str = setting(
        "",
        "a training preset (as `deepernets train --preset NAME`) that every run starts from; base, the axes and "
        "the policies change it",
    )
    base: dict[str, Any] = setting(
        {}, "run settings that every run shares; a value may differ by axis: {per: AXIS, VALUE: setting, ...}"
    )
    axes: dict[str, list[Any]] = setting({}, "run settings, or policy, each with the list of values to try")
    policies: dict[str, dict[str, Any]] = setting({}, "named bundles of run settings: the values of the policy axis")
    seeds: int = setting(1, "run every cell N times (seeds 0..N-1)", minimum=1)
    budget: str = setting(
        "",
        "fit the whole study into this time on this machine (e.g. 15m, 1h, 900s): every run's subset is scaled by "
        "one factor, chosen from a short probe of the speed (default: the subsets as given)",
        pattern=(f"|{TIME}", "a time such as 900s, 15m or 1.5h"),
        metavar="TIME",
    )
    jobs: int = setting(
        1,
        "run N of the study's runs at once on this machine, each in a process of its own on 1/N of the CPU threads: "
        "small models train more images per second as 2 one-thread jobs on a 2-core CPU than as one two-thread job",
        minimum=1,
    )
    lr_finder_steps: int = same_as(LRFinderSettings, "steps")  # of the range test that `lr: auto` runs
    enough_images: dict[str, int] = setting(
        {},
        "training images per dataset that the cells need to be clearly above chance (measured by the grid's author): a "
        "budget that gives fewer says so, and which budget would give them here",
    )

    def jobs_at_once(self, runs: int) -> int:
        """How many of the grid's jobs have a run to do at once: never more than the runs."""
        return max(1, min(self.jobs, runs))


@dataclass
class PlannedRun:
    name: str
    cell: dict[str, Any]  # the axis values, policy and seed that make this run
    config: RunConfig


def load_grid(name_or_path: str) -> Grid:
    """A shipped preset by name, or a grid YAML file by path."""
    path = shipped.grid_path(name_or_path)
    values = settings.convert(Grid, load_yaml(path), str(path), kind="grid key")
    grid = Grid(**{"name": path.stem, **values})
    settings.check(grid, lambda key: f"{path}: {key}")
    fields = settings.specs(RunConfig)
    for axis, choices in grid.axes.items():
        if axis in SET_BY_THE_STUDY:
            raise UserError(f"{path}: axis '{axis}' is set for each run by the study; for seeds, use seeds: N")
        if axis != "policy" and axis not in fields:
            raise UserError(
                f"{path}: axis '{axis}' is not a run setting; valid ones: policy, {', '.join(sorted(fields))}"
            )
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{path}: axis '{axis}' needs a non-empty list of values")
    if grid.preset:
        try:
            shipped.run_preset_path(grid.preset)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None
    for policy in grid.axes.get("policy", []):
        if policy not in grid.policies:
            raise UserError(f"{path}: policy '{policy}' is not defined under policies")
        both = [key for key in grid.policies[policy] if key in grid.axes]
        if both:  # one of them would win, and the run's name would say the other
            raise UserError(f"{path}: policy {policy} sets {both[0]}, which is also an axis: set it in one place")
    for dataset, images in grid.enough_images.items():
        if isinstance(images, bool) or not isinstance(images, int) or images < 1:
            raise UserError(f"{path}: enough_images: {dataset} must be a whole number of images, got {images!r}")
    for where, bundle in [("base", grid.base), *((f"policy {k}", v) for k, v in grid.policies.items())]:
        for key, value in bundle.items():
            if is_per_axis(value):
                check_per_axis(value, grid.axes, f"{path}: {where}: {key}")
    return grid


def is_per_axis(value: Any) -> bool:
    """A setting given one value per value of an axis: {per: optimizer, sgd: 0.05, adam: 0.001}."""
    return isinstance(value, dict) and "per" in value


def check_per_axis(value: dict[Any, Any], axes: dict[str, list[Any]], where: str) -> None:
    axis = value["per"]
    if axis not in axes:
        raise UserError(f"{where}: 'per: {axis}' names no axis of this grid; its axes: {', '.join(axes)}")
    given = set(value) - {"per"}
    missing = [str(v) for v in axes[axis] if v not in given]
    extra = sorted(str(v) for v in given - set(axes[axis]))
    if missing or extra:
        problem = f"no value for {', '.join(missing)}" if missing else f"{', '.join(extra)} is not a value of it"
        raise UserError(f"{where}: one value per {axis} is needed ({problem})")


def expand(grid: Grid, study_dir: Path, overrides: dict[str, Any], seeds: int | None = None) -> list[PlannedRun]:
    """Every run of the grid, in a fixed order, with its complete and validated RunConfig.

    Models and datasets are checked against their registries here, so that a grid naming an unknown one stops
    before anything is written.
    """
    from deepernets.train.setup import check_names  # the registries' checks; training's imports only when needed

    overridden = [key for key in overrides if key in grid.axes]
    if overridden:  # every value of the axis would train the override's, under its own name
        flag = "--" + overridden[0].replace("_", "-")
        raise UserError(f"grid {grid.name}: {flag} sets one of its axes for every run; leave it out, or edit the axis")
    planned = []
    axes = list(grid.axes)
    start = load_yaml(shipped.run_preset_path(grid.preset)) if grid.preset else {}
    for values in itertools.product(*grid.axes.values()):
        for seed in range(seeds or grid.seeds):
            cell = dict(zip(axes, values, strict=True))
            run_settings = {**start, **grid.base}
            for axis, value in cell.items():
                run_settings.update(grid.policies[value] if axis == "policy" else {axis: value})
            run_settings = {k: v[cell[v["per"]]] if is_per_axis(v) else v for k, v in run_settings.items()}
            run_settings.update(overrides)
            name = "-".join(dataset_slug(str(v)) for v in values) + f"-s{seed}"
            run_settings.update(seed=seed, name=name, runs_dir=str(study_dir))
            config = RunConfig.from_dict(run_settings, f"grid {grid.name}").validate()
            check_names(config)
            planned.append(PlannedRun(name, {**cell, "seed": seed}, config))
    names = [p.name for p in planned]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise UserError(f"grid {grid.name}: two cells are both named {duplicate}; make the axis values distinct")
    first: dict[str, str] = {}  # a run's settings (its name aside) -> the first run with them
    for p in planned:
        other = first.setdefault(repr(p.config.replace(name=None)), p.name)
        if other != p.name:  # 0.1 and 1e-1, say: one number written twice
            raise UserError(f"grid {grid.name}: runs {other} and {p.name} have the same settings; make the axis "
                            "values differ")  # fmt: skip
    return planned


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard i/n`: this worker runs every n-th planned run, starting at the i-th."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/n (for example 0/2), got '{text}'") from None
    if not 0 <= index < count:
        raise UserError(f"--shard {text}: i must be in 0..n-1")
    return index, count
