"""A study as N jobs at once on one machine: each run once, the budget counting the jobs side by side."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli
from test_study import budget_grid, fake_probe, starts

from deepernets import study
from deepernets.errors import UserError
from deepernets.study.jobs import Job

# a setting per value of a numeric axis, which the jobs must get as the parent read it
GRID = """
name: j
jobs: 2
base: {{epochs: 1, subset: 4096, test_subset: 500, image_size: 20, data_dir: {data},
       lr: {{per: batch_size, 32: 0.05, 64: 0.1}}}}
axes: {{dataset: [mnist], model: [resnet20], batch_size: [32, 64]}}
"""
TWO_CORES = {"OMP_NUM_THREADS": "2"}  # what a 2-core machine gives torch: one thread per job


def test_a_study_as_two_jobs_runs_each_run_once_in_one_of_them(tmp_path, data_dir):
    (tmp_path / "j.yaml").write_text(GRID.format(data=data_dir))
    result = run_cli("study", str(tmp_path / "j.yaml"), "--runs-dir", "st", cwd=tmp_path, env=TWO_CORES)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "study j: 2 jobs at once, 1 CPU thread each" in lines
    pattern = re.compile(r"\[job (\d)\] final test accuracy ([\d.]+)% .* results in (\S+)")
    trained = [m.groups() for m in map(pattern.match, lines) if m]
    assert {job for job, _, _ in trained} == {"1", "2"}, result.stdout  # both jobs trained
    runs = [p for p in (tmp_path / "st").iterdir() if (p / "config.yaml").exists()]
    assert sorted(run for _, _, run in trained) == sorted(f"st/{p.name}" for p in runs) and len(runs) == 2
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and starts(run) == 1, run.name
        assert summary["lr"] == {32: 0.05, 64: 0.1}[summary["batch_size"]]
        assert summary["final_test_acc"] > 80.0, (run.name, summary["final_test_acc"])  # real training: chance is 10%
    names = {e["name"] for e in json.loads((tmp_path / "st/study.json").read_text())["runs"]}
    assert names == {run.name for run in runs}


FAILING = """
name: f
jobs: 2
base: {{epochs: 1, subset: 512, test_subset: 200, image_size: 16, batch_size: 64, data_dir: {data}}}
axes: {{dataset: [mnist], model: [resnet20], tta: [flip, none]}}
"""


def test_a_run_that_fails_is_tried_once_per_invocation_and_the_study_exits_3(tmp_path, data_dir):
    (tmp_path / "f.yaml").write_text(FAILING.format(data=data_dir))  # --tta flip on digits fails as it starts
    result = run_cli("study", str(tmp_path / "f.yaml"), "--runs-dir", "st", cwd=tmp_path, env=TWO_CORES)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.count("mnist-resnet20-flip-s0 failed:") == 1, result.stdout  # not again by the other job
    assert "deepernets: some runs failed: see st/failures.json" in result.stderr
    assert json.loads((tmp_path / "st/mnist-resnet20-none-s0/summary.json").read_text())["status"] == "finished"
    again = run_cli("study", str(tmp_path / "f.yaml"), "--runs-dir", "st", "--jobs", "1", cwd=tmp_path)
    assert again.returncode == 3 and "0 finished, 0 diverged, 1 failed, 1 already done" in again.stdout


def test_a_terminated_study_stops_its_jobs_instead_of_leaving_them_running(tmp_path, data_dir):
    (tmp_path / "j.yaml").write_text(GRID.format(data=data_dir))
    command = [
        sys.executable,
        "-m",
        "deepernets",
        "study",
        str(tmp_path / "j.yaml"),
        "--runs-dir",
        str(tmp_path / "st"),
    ]
    parent = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, **TWO_CORES}, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.glob("st/*/log.txt"))) < 2:  # both jobs are training
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 130
    jobs = subprocess.run(["pgrep", "-f", f"study_dir: {tmp_path}/st"], capture_output=True, text=True).stdout
    assert jobs == "", "a job outlived the study"  # each job's command line holds the study folder
    assert not (tmp_path / "st/failures.json").exists()


def test_a_dry_run_probes_the_jobs_together_and_writes_nothing(tmp_path, data_dir):
    (tmp_path / "j.yaml").write_text(GRID.format(data=data_dir) + "budget: 2m\n")
    result = run_cli("study", str(tmp_path / "j.yaml"), "--runs-dir", "st", "--dry-run", cwd=tmp_path, env=TWO_CORES)
    assert result.returncode == 0, result.stderr
    assert "as 2 jobs at once, 1 CPU thread each" in result.stdout
    assert re.search(r"budget 2m: training subsets ×[\d.]+: mnist [\d,]+", result.stdout), result.stdout
    assert re.search(r"total ~\d+m\d\ds on this device as 2 jobs at once", result.stdout), result.stdout
    assert not (tmp_path / "st").exists()


def test_a_budget_for_jobs_counts_their_runs_side_by_side(tmp_path):
    from deepernets.study import budget
    from deepernets.study.probe import cached

    grid = dataclasses.replace(budget_grid(tmp_path), jobs=2)
    planned = study.expand(grid, tmp_path, {})
    budget.fit(planned, grid, tmp_path, cached(fake_probe([])), lambda line: None)
    factor = json.loads((tmp_path / "budget.json").read_text())["factor"]
    # as one job's budget (test_study), with the 4 runs' overhead, evaluation and training shared by 2 jobs
    evaluation = 2 * (300 + 2 * 50) / 3 * (2 / 100 + 2 / 50)
    training = 2 * (1000 + 3000) * (1 / 100 + 1 / 50)
    assert factor == pytest.approx((120 - (4 * budget.RUN_OVERHEAD_S + evaluation) / 2) / (training / 2), rel=0.02)
    assert dataclasses.replace(grid, jobs=8).jobs_at_once(4) == 4  # more jobs than runs: as many as runs


def test_a_job_shows_its_lines_marked_but_not_those_already_shown_and_how_it_ended():
    lines: list[str] = []
    script = "print('budget: shown'); print('run a'); print('error: no data'); raise SystemExit(2)"
    job = Job([sys.executable, "-c", script], {}, "[job 2] ", lines.append, {"budget: shown"})
    job.wait()
    assert lines == ["[job 2] run a", "[job 2] error: no data",
                     "[job 2] ended with exit code 2 (its last line: error: no data)"]  # fmt: skip
    suicide = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    killed = Job([sys.executable, "-c", suicide], {}, "", print, set())
    killed.wait()
    assert killed.ending() == "was killed by signal 9"


def test_jobs_is_a_flag_and_a_grid_setting(tmp_path):
    from deepernets.cli import build_parser

    assert build_parser().parse_args(["study", "tiny", "--jobs", "3"]).jobs == 3
    assert study.load_grid("seed-quick").jobs == 2 and study.load_grid("seed").jobs == 1
    (tmp_path / "bad.yaml").write_text("jobs: 0\naxes: {model: [resnet20]}\n")
    with pytest.raises(UserError, match="jobs"):
        study.load_grid(str(tmp_path / "bad.yaml"))
