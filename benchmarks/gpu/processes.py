"""Child commands in process groups of their own, so that a deadline stops everything they started."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from gpu import REPO

GRACE_S = 15  # after SIGINT at a deadline, how long a process group may take to stop before SIGKILL


class ProcessGroups:
    """Every child the sitting starts (each the leader of its own group), so that closing stops what is left."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen] = []

    def start(self, command: list[str], output: IO, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `command` in the checkout, stdout and stderr to `output`, in a new session (its own group)."""
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env or self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def run(self, command: list[str], until: float, log: Path) -> int | None:
        """Run a command with its output appended to `log`; its exit code, or None if stopped at `until`."""
        with open(log, "a") as output:
            output.write(f"$ {' '.join(command)}\n")
            output.flush()
            proc = self.start(command, output)
            return None if self.wait([proc], until) else proc.returncode

    def wait(self, procs: list[subprocess.Popen], until: float) -> bool:
        """Wait for every process until `until` (a time.monotonic() value); past it, stop them all and say True."""
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop(procs)
                return True
        return False

    def stop(self, procs: list[subprocess.Popen]) -> None:
        """SIGINT each process group (pytest and deepernets stop cleanly on it), then SIGKILL what is left."""
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGINT)
        end = time.monotonic() + GRACE_S
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the group still holds: workers, compilers
            proc.wait()

    def stop_all(self) -> None:
        self.stop([p for p in self.started if p.poll() is None])
