"""Measurements in a child process: a fresh process for each one, or one process kept for a series on a GPU.

A measurement's peak memory must be its own. On a CPU that is the process's peak RSS, which only a fresh process
starts anew; on CUDA the allocator's peak resets in place, so one process can take a series of measurements and
save what starting Python, torch and CUDA costs each time (about 9 of the 11 s that each measurement took in the
first GPU sitting, where 50 steps train in well under a second). The protocol is one JSON line each way per
measurement: measure()'s keyword arguments in, its result out.
"""

import gc
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Any

CHILD = "from deepernets.bench.worker import serve; serve()"


def serve() -> None:
    """The child's loop: measure each request from stdin and answer it on stdout, until stdin closes.

    Anything else written to stdout (a library's print) goes to stderr, so that stdout carries answers only. An
    exception ends the process: the parent reports it and starts a fresh process for the next measurement, since a
    failed CUDA step can leave the device unusable for the rest of the process.
    """
    import torch

    from deepernets.bench.measure import measure

    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        print(json.dumps(measure(**json.loads(line))), file=answers, flush=True)
        # as if the next measurement started a fresh process: no compiled code, graphs or cached blocks kept
        torch._dynamo.reset()
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()


class MeasureProcess:
    """A child process running serve(); measure() starts one when none is running."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.stderr = tempfile.TemporaryFile()
        self.pending = b""

    def measure(self, timeout: float | None = None, **request: Any) -> dict[str, Any]:
        """measure(**request) in the child. subprocess.TimeoutExpired after `timeout` seconds (the child is killed);
        subprocess.CalledProcessError, with the child's last stderr line, if it fails (the child has ended)."""
        if self.proc is None:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.stderr)  # fmt: skip
            self.pending = b""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it has ended; reading its stdout finds the end and reports why
        line = self._read_line(timeout)
        if line is None:
            code = self.proc.wait()
            self.proc = None
            self.stderr.seek(0)
            last = self.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
            raise subprocess.CalledProcessError(code, CHILD, stderr=last[0] if last else "")
        return json.loads(line)

    def _read_line(self, timeout: float | None) -> bytes | None:
        """The child's next line; None if it ended first."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                self.close()
                raise subprocess.TimeoutExpired(CHILD, timeout or 0)
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def close(self) -> None:
        """End the child, if one runs: at once (a measurement in progress is lost)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    def __enter__(self) -> "MeasureProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.stderr.close()
