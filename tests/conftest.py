import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
