"""A study run as N jobs at once on this machine (`jobs: N` in a grid, or `--jobs N`).

Each job is a process of its own on 1/N of the CPU threads that runs the study (this shard of it) as one worker
would: it takes the next run that no other job holds (the per-run lock), so the jobs share the runs as they finish
them. The plan and the sizing to a budget happen once, before the jobs start, from a probe of N jobs at once. Their
output is shown line by line, each line marked with its job.
"""

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deepernets.errors import UserError
from deepernets.run.folder import DONE, RunDir
from deepernets.study import budget
from deepernets.study.grid import Grid, expand
from deepernets.study.plan import write_manifest
from deepernets.study.probe import jobs_description, probing, threads_per_job
from deepernets.study.runner import FAILURE_TIME, check_setup

INTERRUPTED = 130  # a job's exit code after Ctrl-C, as the deepernets command's
RUNS_FAILED = 3  # a job's exit code when some of its runs failed (each recorded in failures.json)
OWN_STOP_S = 2  # after Ctrl-C at a terminal, the jobs have had it too: how long they have to stop on their own
STOP_GRACE_S = 30  # then, how long they may take to end their current step before they are killed


def run_jobs(
    grid: Grid,
    study_dir: Path,
    overrides: dict[str, Any],
    *,
    seeds: int | None = None,
    shard: tuple[int, int] = (0, 1),
    log: Callable[[str], None] = lambda line: print(line, flush=True),  # at once, also into a file
) -> bool:
    """Run this shard's share of the grid as `grid.jobs` processes at once; when all of them have ended, return
    whether some runs failed. A SIGTERM stops the jobs as Ctrl-C does, instead of leaving them without a parent."""
    shown: set[str] = set()  # the jobs plan again (and find the factor in budget.json): their repeats are not shown

    def log_once(line: str) -> None:
        shown.add(line)
        log(line)

    planned = expand(grid, study_dir, overrides, seeds)
    mine = planned[shard[0] :: shard[1]]
    # a budget's probe processes read every dataset of the grid: have it on disk before they start, or each of them
    # would download it at once
    check_setup(planned if grid.budget else mine)
    jobs = grid.jobs_at_once(sum(RunDir(study_dir / p.name).status() not in DONE for p in mine))  # runs left
    with probing(jobs) as probe:
        planned = budget.fit(planned, grid, study_dir, probe, log_once)
    write_manifest(grid, study_dir, planned, overrides)
    log(f"study {grid.name}: {jobs_description(jobs)}")
    # YAML keeps what JSON would turn into strings: a setting per value of a numeric axis ({per: batch_size, 32: …});
    # unsorted, since the order of the axes makes the runs' names
    spec = yaml.safe_dump({"grid": dataclasses.asdict(grid), "study_dir": str(study_dir), "overrides": overrides,
                           "seeds": seeds, "shard": list(shard), "since": time.strftime(FAILURE_TIME)},
                          sort_keys=False)  # fmt: skip
    threads = str(threads_per_job(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, "-m", "deepernets.study", spec]  # study/__main__.py
    started: list[Job] = []
    lock = threading.Lock()  # one forwarded line at a time, whole
    terminated = signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        for k in range(1, jobs + 1):
            started.append(Job(command, env, f"[job {k}] ", lambda line: _locked(lock, log, line), shown))
        for job in started:
            job.wait()
    except KeyboardInterrupt:
        _stop(started)
        raise
    finally:
        signal.signal(signal.SIGTERM, terminated)
    ended = [job for job in started if job.process.returncode not in (0, RUNS_FAILED)]
    if ended:
        raise UserError(f"study {grid.name}: {ended[0].prefix.strip()} {ended[0].ending()}: see its lines above")
    return any(job.process.returncode == RUNS_FAILED for job in started)


def _as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _locked(lock: threading.Lock, log: Callable[[str], None], line: str) -> None:
    with lock:
        log(line)


def _stop(jobs: list["Job"]) -> None:
    """After Ctrl-C: the jobs have had it too when it came from the terminal; otherwise (a SIGINT or SIGTERM to
    this process alone) pass it on. Each saves no more than the epochs it has finished. A job still running after
    the grace is killed."""
    deadline = time.time() + OWN_STOP_S
    for job in jobs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.process.wait(timeout=max(0.0, deadline - time.time()))
    for job in jobs:
        if job.process.poll() is None:
            job.process.send_signal(signal.SIGINT)
    for job in jobs:
        try:
            job.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            job.process.kill()
        job.wait()


class Job:
    """One job's process, and a thread that logs its output line by line with a prefix, but for the lines in `shown`,
    and says at once if the job ends with an error."""

    def __init__(
        self, command: list[str], env: dict[str, str], prefix: str, log: Callable[[str], None], shown: set[str]
    ) -> None:
        self.prefix = prefix
        self.last_line = ""
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        encoding="utf-8", errors="replace")  # fmt: skip
        self.forwarder = threading.Thread(target=self._forward, args=(log, shown), daemon=True)
        self.forwarder.start()

    def _forward(self, log: Callable[[str], None], shown: set[str]) -> None:
        with self.process.stdout as output:
            for line in output:  # read to the end, whatever logging does: a job never blocks on a full pipe
                self.last_line = line.rstrip()
                if self.last_line not in shown:
                    _quietly(log, self.prefix + self.last_line)
        if self.process.wait() not in (0, INTERRUPTED):  # an interrupted job has said so itself
            _quietly(log, f"{self.prefix}{self.ending()}")

    def ending(self) -> str:
        code = self.process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"ended with exit code {code}"
        return f"{how} (its last line: {self.last_line})" if self.last_line else how

    def wait(self) -> None:
        self.process.wait()
        self.forwarder.join()


def _quietly(log: Callable[[str], None], line: str) -> None:
    try:
        log(line)
    except (BrokenPipeError, ValueError):  # the reader of our output has gone (`| head`): the jobs go on
        pass
