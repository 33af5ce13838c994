"""Step cuda-tests: `pytest -m cuda tests/test_cuda.py` (in parallel under pytest-xdist), read from its output."""

import importlib.util
import os
import re
import sys
from typing import Any

from gpu.context import Sitting

OUTCOME = r"\b(PASSED|FAILED|SKIPPED|ERROR)\b"
TEST_ID = r"(tests/\S+::\S+)"


def run(sitting: Sitting, until: float) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-m",
        "cuda",
        "tests/test_cuda.py",
        "-p",
        "no:cacheprovider",
        "-rfEs",
    ]
    if importlib.util.find_spec("xdist"):
        command += ["-n", str(min(8, max(1, (os.cpu_count() or 2) // 2)))]
    log = sitting.out / "cuda-tests.log"
    code = sitting.processes.run(command, until, log)
    text = log.read_text(errors="replace")
    status = {0: "done", 1: "done: some tests failed", None: "partial: out of time"}.get(
        code, f"failed: pytest exit code {code}"
    )
    counts, tests = pytest_counts(text), pytest_outcomes(text)
    return {"status": status, "exit_code": code, "counts": counts, "log": log.name, "tests": tests}


def pytest_counts(text: str) -> dict[str, int]:
    """The counts of pytest's last summary line ("1 failed, 7 passed in 80 s"); empty if it never printed one."""
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|errors?)\b", line)]
    if not lines:
        return {}
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", lines[-1])}


def pytest_outcomes(text: str) -> dict[str, str]:
    """Each test's outcome from `pytest -v` lines: "test PASSED" plainly, "PASSED test" under xdist."""
    outcomes = {}
    for line in text.splitlines():
        if match := re.search(f"{TEST_ID}.*?{OUTCOME}", line):
            test, outcome = match.groups()
        elif match := re.search(f"{OUTCOME}.*?{TEST_ID}", line):
            outcome, test = match.groups()
        else:
            continue
        outcomes[test] = outcome
    return outcomes
