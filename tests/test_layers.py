"""The package's layers: a module imports only from its own layer or the ones below, and the bottom layers and the
report never import torch (reading a run's config or building a report must not pay for it)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "deepernets"

# The top-level part of a module's name (`deepernets.<part>...`) and its layer, lowest first.
LAYER = {
    "errors": 0,
    "settings": 1,  # how a setting is declared
    "config": 2,  # the settings of a run, declared
    "run": 3,
    "data": 4,
    "models": 4,
    "train": 5,
    "infer": 6,
    "bench": 6,
    "study": 6,
    "report": 6,
    "cli": 7,
    "__main__": 8,  # `python -m deepernets` runs the CLI
}
# The report reads run folders: besides its own modules it may use only these.
REPORT_MAY_IMPORT = {"errors", "settings", "config", "run"}
WITHOUT_TORCH = ("errors", "settings", "config", "run", "report")
MAX_LINES = 300


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) == 1 else relative.parts[0]


def imported_parts(path: Path) -> set[str]:
    """Top-level parts of deepernets that the module imports, at any depth of the file (lazy imports count)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = node.module.split(".")
            if names[0] == "deepernets":
                parts.update([names[1]] if len(names) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("deepernets."))
    return parts


def test_every_module_belongs_to_a_layer():
    unknown = {part_of(p) for p in modules()} - set(LAYER) - {"__init__"}
    assert not unknown, f"add these to LAYER in {Path(__file__).name}: {sorted(unknown)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_layer_and_below(path):
    part = part_of(path)
    if part == "__init__":
        return
    imported = imported_parts(path) - {part}
    upward = sorted(p for p in imported if LAYER[p] > LAYER[part])
    assert not upward, f"{part} (layer {LAYER[part]}) imports higher layers: {upward}"
    sideways = sorted(p for p in imported if LAYER[p] == LAYER[part])
    assert not sideways, f"{part} imports its own layer's other packages: {sideways}"
    if part == "report":
        assert imported <= REPORT_MAY_IMPORT, f"report imports {sorted(imported - REPORT_MAY_IMPORT)}"


@pytest.mark.parametrize("part", WITHOUT_TORCH)
def test_the_bottom_layers_and_the_report_load_without_torch(part):
    code = (
        "import importlib, pkgutil, sys\n"
        f"m = importlib.import_module('deepernets.{part}')\n"
        "for info in pkgutil.walk_packages(getattr(m, '__path__', []), m.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not loaded, loaded[:3]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_grows_past_one_job(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by job (limit {MAX_LINES})"
