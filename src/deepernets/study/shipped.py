"""The presets shipped with the package: study grids (presets/*.yaml) and training recipes (presets/runs/*.yaml)."""

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from deepernets.errors import UserError

FOLDER = resources.files("deepernets.study.presets")


def grid_names() -> list[str]:
    return _names(FOLDER)


def grid_path(name_or_path: str) -> Path:
    """A shipped grid by name, or a grid YAML file by path."""
    if name_or_path in grid_names():
        return Path(str(FOLDER / f"{name_or_path}.yaml"))
    path = Path(name_or_path)
    if not path.exists():
        raise UserError(f"no study preset or grid file '{name_or_path}'; presets: {', '.join(grid_names())}")
    return path


def run_preset_names() -> list[str]:
    return _names(FOLDER / "runs")


def run_preset_path(name: str) -> Path:
    """A training recipe by name (`deepernets train --preset NAME`)."""
    if name not in run_preset_names():
        raise UserError(f"unknown training preset '{name}'; choose one of: {', '.join(run_preset_names())}")
    return Path(str(FOLDER / "runs" / f"{name}.yaml"))


def _names(folder: Traversable) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
