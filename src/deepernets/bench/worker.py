"""Measurements in a child process: a fresh process for each one, or one process kept for a series on a GPU.

A measurement's peak memory must be its own. On a CPU that is the process's peak RSS, which only a fresh process
starts anew; on CUDA the allocator's peak resets in place, so one process can take a series of measurements and
skip starting Python, torch and CUDA each time (in the first GPU sitting each measurement took about 11 s, where
its 50 timed steps train in well under a second). The protocol is one JSON line each way per measurement:
measure()'s keyword arguments in; its result, or {"error": why} just before the child ends, out.
"""

import gc
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import traceback
from typing import IO, Any

CHILD = "from deepernets.bench.worker import serve; serve()"
POLL_S = 1.0  # how often a wait for an answer checks that the child still lives


def serve() -> None:
    """The child's loop: measure each request from stdin and answer it on stdout, until stdin closes.

    Anything else written to stdout (a library's print) goes to stderr, so that stdout carries answers only. A
    failure is answered and ends the process: the parent starts a fresh one for the next measurement, since a
    failed CUDA step can leave the device unusable for the rest of the process.
    """
    import torch

    from deepernets.bench.measure import measure

    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        try:
            answer = measure(**json.loads(line))
        except Exception as e:
            traceback.print_exc()
            print(json.dumps({"error": traceback.format_exception_only(e)[-1].strip()}), file=answers, flush=True)
            sys.exit(1)
        print(json.dumps(answer), file=answers, flush=True)
        # as if the next measurement started a fresh process: no compiled code, CUDA graphs or cached blocks kept
        torch._dynamo.reset()
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def _spawn(stdout: int, stderr: int | IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A fresh child running serve(), reading its requests from a pipe."""
    return subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=env)


def _send(proc: subprocess.Popen[bytes], request: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()


def measure_unanswered(env: dict[str, str], **request: Any) -> subprocess.Popen[bytes]:
    """One measurement in a fresh child whose answer and messages nobody reads (compiling to fill the caches)."""
    proc = _spawn(subprocess.DEVNULL, subprocess.DEVNULL, env)
    _send(proc, request)
    assert proc.stdin is not None
    proc.stdin.close()  # serve() ends after this one
    return proc


class MeasureProcess:
    """A child process running serve(); measure() starts one when none is running."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: compile warnings cannot fill it and block
        self.pending = b""

    def measure(self, timeout: float | None = None, **request: Any) -> dict[str, Any]:
        """measure(**request) in the child. subprocess.TimeoutExpired after `timeout` seconds (the child is killed);
        subprocess.CalledProcessError, with one line that says why, if it fails (the child has ended)."""
        if self.proc is None:
            self.proc = _spawn(subprocess.PIPE, self.stderr)
            self.pending = b""
        stderr_from = self.stderr.seek(0, os.SEEK_END)  # this request's messages only
        try:
            _send(self.proc, request)
        except BrokenPipeError:
            pass  # it has ended; reading its stdout finds the end and reports why
        line = self._read_line(timeout)
        answer = json.loads(line) if line is not None else None
        if answer is None or "error" in answer:
            code = self._end()
            why = answer["error"] if answer else self._last_message(stderr_from)
            if code is not None and code < 0:
                why = f"killed by signal {-code}" + (f" ({why})" if why else "")
            raise subprocess.CalledProcessError(code or 1, CHILD, stderr=why or f"exit code {code}")
        return answer

    def _read_line(self, timeout: float | None) -> bytes | None:
        """The child's next line; None if it ended first."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.close(wait_s=0)
                raise subprocess.TimeoutExpired(CHILD, timeout or 0)
            if not select.select([fd], [], [], POLL_S if left is None else min(left, POLL_S))[0]:
                # DataLoader workers forked by a dead child may hold its stdout open for a while: look at it
                if self.proc.poll() is not None:
                    return None
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def _last_message(self, offset: int) -> str:
        """The last line the child wrote to stderr since `offset`."""
        self.stderr.seek(offset)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _end(self) -> int | None:
        """Wait a little for a child that is ending, kill it if it hangs, and return its exit code."""
        assert self.proc is not None
        try:
            code: int | None = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        self.close(wait_s=0)
        return code

    def close(self, wait_s: float = 10) -> None:
        """End the child, if one runs: close its stdin, then kill it if it has not ended within `wait_s` seconds."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.close()  # serve() returns when its stdin ends, and torch's workers shut down cleanly
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def __enter__(self) -> "MeasureProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.stderr.close()
