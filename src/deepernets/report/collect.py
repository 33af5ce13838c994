"""Read run folders into records: every run found, every run a study planned (study.json), failures, confusion
matrices and LR range tests. Runs are found under one or more folders (any directory holding config.yaml and
summary.json)."""

import csv
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from deepernets.config import WHERE_SETTINGS, RunConfig, shortfall
from deepernets.errors import UserError
from deepernets.run import atomic
from deepernets.run.folder import RunDir

CellKey = tuple[str, str, str, str, str]  # dataset, model, optimizer, policy, variant

DEFAULTS = RunConfig().to_dict()
# Settings a variant does not name: the cell's own, those it names in words of its own (epochs, images, batch), the
# run's name, and where and how a run is done. Every other setting that differs from its default names it.
NOT_VARIANT = ("dataset", "model", "optimizer", "seed", "name", "epochs", "subset", "test_subset", "batch_size",
               *WHERE_SETTINGS)  # fmt: skip
NAMED_POLICY = ("lr", "schedule", "lr_pick")  # the settings that a policy named by policy_of holds


def policy_of(config: RunConfig) -> str:
    """A policy named from the settings, for runs that no study plan names (a planned `lr: auto` is unresolved)."""
    if config.lr == "auto":
        return f"{config.schedule} lr auto ({config.lr_pick})"
    return f"lr{config.lr}" if config.schedule == "constant" else f"{config.schedule} lr{config.lr:.3g}"


def variant_of(
    config: RunConfig, policy_settings: tuple[str, ...] = NAMED_POLICY, axes: dict[str, Any] | None = None
) -> str:
    """What else sets runs apart; only runs of one variant are averaged together.

    `policy_settings` are what the run's policy holds (its name says them); `axes` are the other axes of the grid
    that planned it, each named whatever its value, so that every value of an axis is a variant of its own.
    """
    axes = axes or {}
    images = "all images" if config.subset is None else f"{config.subset} train images"
    if config.test_subset is not None:
        images += f", {config.test_subset} test images"
    words = [f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}", images, f"batch {config.batch_size}"]
    named_elsewhere = {*NOT_VARIANT, *policy_settings, *axes}
    words += [f"{k} {v}" for k, v in config.to_dict().items() if k not in named_elsewhere and v != DEFAULTS[k]]
    words += [f"{k} {v}" for k, v in axes.items()]
    return ", ".join(words)


@dataclass
class Run:
    dir: RunDir
    config: RunConfig
    summary: dict[str, Any]
    metrics: list[dict[str, str]]
    policy: str
    study_dir: Path | None  # the study folder the run lies in, if any
    planned: bool  # whether its study's study.json plans it
    variant: str  # the settings besides dataset, model, optimizer, policy and seed, as words

    @property
    def cell_key(self) -> CellKey:
        """Runs of one cell are seeds of one experiment: they are averaged together."""
        return (self.config.dataset, self.config.model, self.config.optimizer, self.policy, self.variant)

    @property
    def label(self) -> str:
        """The run's folder with its parent, unique where several study folders hold runs of the same names."""
        return f"{self.dir.path.parent.name}/{self.dir.name}"

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    @property
    def final(self) -> float | None:
        return self.summary.get("final_test_acc")


@dataclass
class Planned:
    """A run that a study's study.json plans."""

    name: str
    dir: Path  # resolved, like study_dir
    study_dir: Path
    cell: dict[str, Any]  # the axis values and seed that make the run
    config: RunConfig | None  # its planned settings; None in study.json files written before they were recorded
    policy_settings: tuple[str, ...]  # what the grid's policies set, or NAMED_POLICY where they are not known

    @property
    def label(self) -> str:
        return f"{self.study_dir.name}/{self.name}"

    @property
    def policy(self) -> str | None:
        if "policy" in self.cell:
            return self.cell["policy"]
        return policy_of(self.config) if self.config else None

    @property
    def axes(self) -> dict[str, Any]:
        """The values of the grid's axes other than the cell key's own."""
        return {k: v for k, v in self.cell.items() if k not in NOT_VARIANT and k != "policy"}

    def variant_of(self, config: RunConfig) -> str:
        return variant_of(config, self.policy_settings, self.axes)

    @property
    def cell_key(self) -> CellKey | None:
        """The cell the run is planned for, as Run.cell_key; unknown where the plan has no settings."""
        c = self.config
        return None if c is None else (c.dataset, c.model, c.optimizer, self.policy, self.variant_of(c))


@dataclass
class Collection:
    """What the folders hold: the runs found and the runs their studies planned."""

    folders: list[Path]
    runs: list[Run]
    planned: list[Planned]
    abouts: dict[str, str]  # what each study is (its grid's `about`), by study name, for studies that say
    unread: list[tuple[Path, str]]  # files that look like a run's or a study's but are not ours to read, and why

    @cached_property
    def by_dir(self) -> dict[Path, Run]:
        """The runs by their resolved folder, as Planned.dir names them."""
        return {r.dir.path.resolve(): r for r in self.runs}

    @property
    def missing(self) -> list[Planned]:
        """Planned runs without a run folder (not started, or failed before writing one)."""
        return [p for p in self.planned if p.dir not in self.by_dir]


def collect(folders: list[Path]) -> Collection:
    """Every run under the folders, and every run that a study there planned (study.json)."""
    plans, abouts, unread = read_plans(folders)
    study_dirs = {p.study_dir for p in plans.values()}
    runs = []
    seen: set[Path] = set()
    for folder in folders:
        for config_path in sorted(folder.rglob("config.yaml")):
            run_dir = RunDir(config_path.parent)
            path = run_dir.path.resolve()
            if path in seen or run_dir.read_summary() is None:
                continue
            seen.add(path)
            try:
                config = run_dir.read_config()
            except UserError as e:  # another tool's, or a newer version's, config.yaml: one folder, not the report
                unread.append((config_path, str(e).removeprefix(f"{config_path}: ")))
                continue
            plan = plans.get(path)
            # a run its study's plan lacks (study.json of an older version kept only the last invocation's runs)
            # belongs to the cell of its planned seeds, whose names differ only in the seed
            source = plan or _planned_sibling(path, plans)
            # a planned run's variant is its plan's (where the plan has `lr: auto`, config.yaml has the LR it chose)
            variant = source.variant_of(plan.config if plan and plan.config else config) if source else None
            runs.append(
                Run(
                    dir=run_dir,
                    config=config,
                    summary=run_dir.read_summary() or {},
                    metrics=run_dir.read_metrics(),
                    policy=(source.policy if source else None) or policy_of(config),
                    study_dir=path.parent if plan or path.parent in study_dirs else None,
                    planned=plan is not None,
                    variant=variant or variant_of(config),
                )
            )
    collection = Collection(folders, runs, list(plans.values()), abouts, unread)
    if not runs and not collection.missing:
        raise UserError(f"no runs found under {', '.join(str(f) for f in folders)}: train or run a study first")
    return collection


def read_plans(folders: list[Path]) -> tuple[dict[Path, Planned], dict[str, str], list[tuple[Path, str]]]:
    """The runs that the studies under the folders plan, by their resolved folder; each study's `about`; and the
    study.json files that are no plan of ours."""
    plans: dict[Path, Planned] = {}
    unread: list[tuple[Path, str]] = []
    described: list[tuple[str, Path, str]] = []  # each study's name, folder and `about`
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder of runs")
        for manifest in sorted(folder.rglob("study.json")):
            study_dir = manifest.parent.resolve()
            study = atomic.read_json(manifest)
            if not isinstance(study, dict) or not isinstance(study.get("runs"), list):
                unread.append((manifest, "no list of planned runs"))
                continue
            grid = study.get("grid", {})
            if grid.get("about"):
                about = grid["about"] + _shortfall(grid, study["runs"]) + _overridden(study.get("overrides") or {})
                described.append((grid.get("name") or manifest.parent.name, manifest.parent, about))
            policies = grid.get("policies") or {}
            held = tuple(sorted({k for bundle in policies.values() for k in bundle}))
            for entry in study["runs"]:
                config = RunConfig.from_dict(entry["config"], str(manifest)) if "config" in entry else None
                policy_settings = held if "policy" in entry["cell"] and policies else NAMED_POLICY
                p = Planned(entry["name"], study_dir / entry["name"], study_dir, entry["cell"], config, policy_settings)
                plans.setdefault(p.dir, p)
    names = [name for name, _, _ in described]
    folder_names = [folder.name for _, folder, _ in described]
    abouts = {}
    for name, folder, about in described:  # several folders of one study (merged) are told apart by their folders
        label = name if names.count(name) == 1 else f"{name} ({folder.name})"
        abouts[f"{name} ({folder})" if folder_names.count(folder.name) > 1 else label] = about
    return plans, abouts, unread


def _shortfall(grid: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """A sentence when a budget gave the runs fewer training images than the grid says its cells need."""
    configs = [entry.get("config", {}) for entry in runs]
    short = shortfall(grid.get("enough_images") or {}, ((c.get("dataset"), c.get("subset")) for c in configs))
    if not short:
        return ""
    why = ": its budget was too short for this machine, and a larger one gives them" if grid.get("budget") else ""
    return f" Its runs trained on fewer images than its cells need to be clearly above chance ({short}){why}."


def _overridden(overrides: dict[str, Any]) -> str:
    """A sentence naming the command line's settings that the grid's description does not know."""
    if not overrides:
        return ""
    flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items())
    return f" Its runs were started with {flags}, which this description does not include."


def _planned_sibling(run: Path, plans: dict[Path, Planned]) -> Planned | None:
    """A planned run in the same study folder whose name differs only in the seed."""

    def cell_name(name: str) -> str:
        return re.sub(r"-s\d+$", "", name)

    siblings = (p for p in plans.values() if p.study_dir == run.parent and cell_name(p.name) == cell_name(run.name))
    return next(siblings, None)


def read_failures(folders: list[Path]) -> dict[str, str]:
    """The last error of each failed run, from its study's failures.json, by the run's label (study/run)."""
    errors = {}
    for folder in folders:
        for path in sorted(folder.rglob("failures.json")):
            for name, failure in atomic.read_json(path).items():
                errors[f"{path.parent.name}/{name}"] = failure["error"]
    return errors


def read_confusion(run: Run) -> tuple[list[list[int]], list[str]]:
    """The run's confusion matrix (rows true, columns predicted) and class names; empty where it wrote none."""
    path = run.dir.path / "confusion.csv"
    if not path.exists():
        return [], []
    with path.open() as f:
        rows = list(csv.reader(f))
    return [[int(v) for v in row[1:]] for row in rows[1:]], rows[0][1:]


@dataclass
class RangeTest:
    """One LR range test: a study's (shared by its cells) or a single `--lr auto` run's."""

    source: str  # where it comes from, as the report names it
    result: dict[str, Any]  # result.json, or the run summary's lr_finder record, with dataset, model and optimizer
    plot: Path  # its lr_finder.png, which may be absent


def read_range_tests(collection: Collection) -> list[RangeTest]:
    """A study's tests (its lr_finder/*/result.json), then those of single runs outside a study."""
    tests = []
    study_dirs = {r.study_dir for r in collection.runs if r.study_dir} | {m.study_dir for m in collection.missing}
    for study_dir in sorted(study_dirs):
        for path in sorted((study_dir / "lr_finder").glob("*/result.json")):
            tests.append(
                RangeTest(f"study {study_dir.name}", atomic.read_json(path), path.parent / "plots/lr_finder.png")
            )
    for r in collection.runs:
        if r.summary.get("lr_finder") and not r.study_dir:  # a study's runs share the test listed above
            names = {"dataset": r.config.dataset, "model": r.config.model, "optimizer": r.config.optimizer}
            tests.append(RangeTest(r.label, {**r.summary["lr_finder"], **names}, r.dir.plots / "lr_finder.png"))
    return tests
