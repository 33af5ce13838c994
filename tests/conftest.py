import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# test.sh runs the tests in one worker per core (pytest-xdist): each worker and every process it starts then uses one
# thread, since two workers of two threads each would oversubscribe a 2-core machine's cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# Modules whose tests train longest, the heaviest first.
HEAVIEST_MODULES = ("test_train_integration.py", "test_study_jobs.py", "test_study.py", "test_distributed.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that train on the real datasets first, those of the heaviest modules before the rest: a long test
    started last leaves one worker running alone at the end. Then they are dealt out alternately to the two halves
    that test.sh's `--dist worksteal` gives its two workers, so that each starts with long tests and ends with short
    ones, which the other can take."""

    def order(item: pytest.Item) -> tuple[bool, int]:
        module = Path(str(item.fspath)).name
        heavy = HEAVIEST_MODULES.index(module) if module in HEAVIEST_MODULES else len(HEAVIEST_MODULES)
        return "data_dir" not in getattr(item, "fixturenames", ()), heavy

    items.sort(key=order)
    items[:] = items[0::2] + items[1::2]


def shared_data() -> Path | None:
    """The real datasets: $DEEPERNETS_DATA, else ../shared/data beside the repository."""
    for candidate in (os.environ.get("DEEPERNETS_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_data()
    if found is None:
        pytest.skip("real datasets not found: set DEEPERNETS_DATA or put them in ../shared/data")
    return found


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m deepernets ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "deepernets", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_in_process(monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """`deepernets ARGS` through cli.main in this process, in `cwd`: its exit code and output, as run_cli gives them,
    without the seconds a new interpreter spends importing torch (for errors found before any work starts)."""
    from deepernets import cli

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse's usage errors exit
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def kill_once_an_epoch_is_saved(args: list[str], cwd: Path, run: Path) -> None:
    """Start `python -m deepernets ARGS` and SIGKILL it as soon as `run` has a metrics.csv (its first epoch saved)."""
    kill_once_written(args, cwd, str((run / "metrics.csv").relative_to(cwd)))


def kill_once_written(args: list[str], cwd: Path, pattern: str) -> None:
    """Start `python -m deepernets ARGS` in `cwd` and SIGKILL it as soon as a file matches the glob `pattern` there."""
    proc = subprocess.Popen([sys.executable, "-m", "deepernets", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not any(cwd.glob(pattern)):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
