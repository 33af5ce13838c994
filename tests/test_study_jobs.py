"""A study as N jobs at once on one machine: each run once, the budget counting the jobs side by side."""

import dataclasses
import json
import re
import sys

import pytest
from conftest import run_cli
from test_study import budget_grid, fake_probe, starts

from deepernets import study
from deepernets.study.jobs import Job

GRID = """
name: j
jobs: 2
budget: 45s
base: {{epochs: 1, batch_size: 32, subset: 1000, test_subset: 500, data_dir: {data}}}
axes: {{dataset: [mnist], model: [resnet20], lr: [0.05, 0.1], seed: [0, 1]}}
"""


def test_a_study_as_two_jobs_runs_each_run_once_in_one_of_them(tmp_path, data_dir):
    (tmp_path / "j.yaml").write_text(GRID.format(data=data_dir))
    result = run_cli("study", str(tmp_path / "j.yaml"), "--runs-dir", "st", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "study j: 2 jobs at once, 1 CPU thread each" in lines
    # planned once, by the parent: the jobs' own lines about the budget are not repeated
    assert sum("training subsets ×" in line for line in lines) == 1
    trained = {
        m["job"]: m["run"]
        for m in map(re.compile(r"\[job (?P<job>\d)\] final test .* results in (?P<run>\S+)").match, lines)
        if m  # fmt: skip
    }
    assert set(trained) == {"1", "2"}, result.stdout  # both jobs trained
    factor = json.loads((tmp_path / "st/budget.json").read_text())["factor"]
    runs = [p for p in (tmp_path / "st").iterdir() if (p / "config.yaml").exists()]
    assert len(runs) == 4
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and starts(run) == 1, run.name
        assert summary["train_images"] == max(32, round(1000 * factor, -2))
        # real training: MNIST after one epoch of a few thousand images
        assert summary["final_test_acc"] > 90.0, (factor, summary["final_test_acc"])
    names = {e["name"] for e in json.loads((tmp_path / "st/study.json").read_text())["runs"]}
    assert names == {run.name for run in runs}


def test_a_budget_for_jobs_counts_their_runs_side_by_side(tmp_path):
    from deepernets.study import budget
    from deepernets.study.estimate import cached

    grid = dataclasses.replace(budget_grid(tmp_path), jobs=2)
    planned = study.expand(grid, tmp_path, {})
    budget.fit(planned, grid, tmp_path, cached(fake_probe([])), lambda line: None)
    factor = json.loads((tmp_path / "budget.json").read_text())["factor"]
    # as one job's budget (test_study), with the 4 runs' overhead, evaluation and training shared by 2 jobs
    evaluation = 2 * (300 + 2 * 50) / 3 * (2 / 100 + 2 / 50)
    training = 2 * (1000 + 3000) * (1 / 100 + 1 / 50)
    assert factor == pytest.approx((120 - (4 * budget.RUN_OVERHEAD_S + evaluation) / 2) / (training / 2), rel=0.02)


def test_a_job_shows_its_lines_marked_but_not_those_already_shown():
    lines: list[str] = []
    script = "print('budget: shown'); print('run a'); print('error: no data'); raise SystemExit(2)"
    job = Job([sys.executable, "-c", script], {}, "[job 2] ", lines.append, {"budget: shown"})
    job.wait()
    assert lines == ["[job 2] run a", "[job 2] error: no data"]
    assert (job.process.returncode, job.last_line) == (2, "error: no data")


def test_jobs_is_a_flag_and_a_grid_setting(tmp_path):
    from deepernets.cli import build_parser

    assert build_parser().parse_args(["study", "tiny", "--jobs", "3"]).jobs == 3
    assert study.load_grid("seed-quick").jobs == 2 and study.load_grid("seed").jobs == 1
    (tmp_path / "bad.yaml").write_text("jobs: 0\naxes: {model: [resnet20]}\n")
    with pytest.raises(Exception, match="jobs"):
        study.load_grid(str(tmp_path / "bad.yaml"))


def test_a_dry_run_estimates_the_jobs_side_by_side_and_writes_nothing(tmp_path, data_dir):
    (tmp_path / "j.yaml").write_text(GRID.format(data=data_dir))
    result = run_cli("study", str(tmp_path / "j.yaml"), "--runs-dir", "st", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"total ~\d+m\d\ds on this device as 2 jobs at once", result.stdout), result.stdout
    assert not (tmp_path / "st").exists()
