"""A study run as N jobs at once on this machine (`jobs: N` in a grid, or `--jobs N`).

Each job is a process of its own on 1/N of the CPU threads that runs the study (this shard of it) as one worker
would: it takes the next run that no other job holds (the per-run lock), so the jobs share the runs as they finish
them. The plan and the sizing to a budget happen once, before the jobs start, from a probe of N jobs at once. Their
output is shown line by line, each line marked with its job.
"""

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepernets.errors import UserError
from deepernets.study import budget, estimate
from deepernets.study.grid import Grid, expand
from deepernets.study.plan import write_manifest
from deepernets.study.runner import check_setup, run_study


def run_jobs(
    grid: Grid,
    study_dir: Path,
    overrides: dict[str, Any],
    *,
    seeds: int | None = None,
    shard: tuple[int, int] = (0, 1),
    log: Callable[[str], None] = print,
) -> None:
    """Run this shard's share of the grid as `grid.jobs` processes at once; return when all of them have ended."""
    shown: set[str] = set()  # the jobs plan again (and find the factor in budget.json): their repeats are not shown

    def log_once(line: str) -> None:
        shown.add(line)
        log(line)

    planned = expand(grid, study_dir, overrides, seeds)
    check_setup(planned[shard[0] :: shard[1]])
    with estimate.probing(grid.jobs) as probe:
        planned = budget.fit(planned, grid, study_dir, probe, log_once)
    write_manifest(grid, study_dir, planned)
    threads = estimate.threads_per_job(grid.jobs)
    log(f"study {grid.name}: {grid.jobs} jobs at once, {threads} CPU thread{'s' * (threads > 1)} each")
    job = {
        "grid": dataclasses.asdict(grid),  # a job runs run_study itself, so grid.jobs starts no more jobs
        "study_dir": str(study_dir),
        "overrides": overrides,
        "seeds": seeds,
        "shard": list(shard),
    }
    # unbuffered, so that each job's lines show as they are written
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "deepernets.study.jobs", json.dumps(job)]
    jobs = [Job(command, env, f"[job {k + 1}] ", log, shown) for k in range(grid.jobs)]
    try:
        for job_ in jobs:
            job_.wait()
    except KeyboardInterrupt:  # the jobs have had the same Ctrl-C: let them save their epochs and end
        for job_ in jobs:
            job_.wait()
        raise
    for k, job_ in enumerate(jobs, 1):
        if job_.process.returncode != 0:
            raise UserError(
                f"job {k} of study {grid.name} stopped (exit code {job_.process.returncode}): {job_.last_line}"
            )


class Job:
    """One job's process, and a thread that logs its output line by line with a prefix, but for the lines in `shown`."""

    def __init__(
        self, command: list[str], env: dict[str, str], prefix: str, log: Callable[[str], None], shown: set[str]
    ) -> None:
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.last_line = ""
        self.forwarder = threading.Thread(target=self._forward, args=(prefix, log, shown))
        self.forwarder.start()

    def _forward(self, prefix: str, log: Callable[[str], None], shown: set[str]) -> None:
        for line in self.process.stdout:
            self.last_line = line.rstrip()
            if self.last_line not in shown:
                log(prefix + self.last_line)

    def wait(self) -> None:
        self.process.wait()
        self.forwarder.join()


def _job(job: dict[str, Any]) -> int:
    """One job: run the study as one worker of it, with the settings its parent planned."""
    from deepernets.train.cpu_speed import keep_freed_memory_mapped

    keep_freed_memory_mapped()  # as the deepernets command does
    try:
        run_study(Grid(**job["grid"]), Path(job["study_dir"]), job["overrides"], seeds=job["seeds"],
                  shard=tuple(job["shard"]))  # fmt: skip
    except UserError as e:
        print(f"error: {' '.join(str(e).split())}")
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished epochs are saved")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_job(json.loads(sys.argv[1])))
