"""Studies on real MNIST subsets: the report matches the runs, and restarts and parallel workers run each run once."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from deepernets import study
from deepernets.config import RunConfig
from deepernets.errors import UserError

GRID = """
name: {name}
about: a check of two policies, on 256 images
base: {{epochs: 2, batch_size: 64, subset: 256, test_subset: 250, data_dir: {data}}}
axes:
  dataset: [mnist]
  model: {models}
  policy: [lr0.01, scheduler]
policies:
  lr0.01: {{lr: 0.01, schedule: constant}}
  scheduler: {{lr: auto, schedule: onecycle}}
lr_finder_steps: 20
seeds: {seeds}
"""


def write_grid(tmp_path: Path, data_dir: Path, name: str = "g", models: str = "[resnet20]", seeds: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(GRID.format(name=name, data=data_dir, models=models, seeds=seeds))
    return path


def starts(run: Path) -> int:
    return sum(1 for line in (run / "log.txt").read_text().splitlines() if line.startswith("run "))


def test_grid_expansion_and_presets(tmp_path):
    assert {"seed", "seed-quick", "mnist-policies", "tiny"} <= set(study.grid_names())
    grid = study.load_grid("seed")
    planned = study.expand(grid, tmp_path, {}, seeds=2)
    assert len(planned) == 2 * 4 * 2 * 3 * 2
    assert len({p.name for p in planned}) == len(planned)
    first = planned[0].config
    assert (first.batch_size, first.epochs, first.momentum, first.weight_decay) == (128, 50, 0.9, 5e-4)
    scheduler = [p for p in planned if p.cell["policy"] == "scheduler"]
    assert all(p.config.lr == "auto" and p.config.schedule == "onecycle" for p in scheduler)
    quick = study.expand(grid, tmp_path, {"epochs": 1, "subset": 100})
    assert all(p.config.epochs == 1 and p.config.subset == 100 for p in quick)
    main_job = study.load_grid("seed-quick")
    cells = {
        (p.cell["dataset"], p.cell["optimizer"], p.cell["policy"]): p.config
        for p in study.expand(main_job, tmp_path, {})
    }
    assert len(cells) == 8 and main_job.budget == "13m" and "deepernets study seed" in main_job.about
    assert cells[("mnist", "adam", "constant")].lr == 0.001 and cells[("cifar10", "sgd", "one-cycle")].lr == 0.05
    assert cells[("mnist", "sgd", "constant")].image_size == 20 and cells[("cifar10", "sgd", "constant")].shift == 0
    assert cells[("cifar10", "adam", "one-cycle")].image_size == 24
    assert all(c.precise_bn == 20 for c in cells.values())
    assert study.parse_shard("1/3") == (1, 3)
    with pytest.raises(UserError):
        study.parse_shard("3/3")


def test_a_setting_may_take_one_value_per_value_of_an_axis(tmp_path):
    (tmp_path / "per.yaml").write_text(
        "axes: {dataset: [mnist, cifar10], optimizer: [sgd, adam], policy: [constant]}\n"
        "base: {subset: {per: dataset, mnist: 600, cifar10: 900}}\n"
        "policies: {constant: {schedule: constant, lr: {per: optimizer, sgd: 0.05, adam: 0.001}}}\n"
    )
    grid = study.load_grid(str(tmp_path / "per.yaml"))
    planned = study.expand(grid, tmp_path, {})
    got = {(p.cell["dataset"], p.cell["optimizer"]): (p.config.subset, p.config.lr) for p in planned}
    assert got == {
        ("mnist", "sgd"): (600, 0.05),
        ("mnist", "adam"): (600, 0.001),
        ("cifar10", "sgd"): (900, 0.05),
        ("cifar10", "adam"): (900, 0.001),
    }
    overridden = study.expand(grid, tmp_path, {"subset": 50})
    assert {p.config.subset for p in overridden} == {50}


def test_a_grid_may_start_every_run_from_a_training_preset(tmp_path):
    recipe = study.expand(study.load_grid("cifar10-recipe"), tmp_path, {})
    assert len(recipe) == 4 * 3 and {p.cell["model"] for p in recipe} == {
        "resnet20",
        "resnet44",
        "vgg13_bn",
        "vgg16_bn",
    }
    assert {p.cell["seed"] for p in recipe} == {0, 1, 2}
    preset = RunConfig.from_sources([study.run_preset_path("cifar10")], {}, {})
    for run in recipe:  # the preset's every setting, the grid's model and seed
        assert run.config.replace(model=preset.model, seed=preset.seed, name="", runs_dir="") == preset.replace(
            name="", runs_dir=""
        )
    (tmp_path / "over.yaml").write_text("preset: cifar10\nbase: {epochs: 3}\naxes: {cutout: [0, 16]}\n")
    over = study.expand(study.load_grid(str(tmp_path / "over.yaml")), tmp_path, {"subset": 100})
    assert [(p.config.cutout, p.config.epochs, p.config.subset, p.config.lr) for p in over] == [
        (0, 3, 100, 0.1),
        (16, 3, 100, 0.1),
    ]


def test_a_range_test_too_short_to_mean_anything_is_refused(tmp_path):
    (tmp_path / "short.yaml").write_text("name: short\naxes: {model: [resnet20]}\nlr_finder_steps: 10\n")
    with pytest.raises(UserError, match="short.yaml: lr_finder_steps must be at least 20, got 10"):
        study.load_grid(str(tmp_path / "short.yaml"))


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("axes: {colour: [red]}", "axis 'colour' is not a run setting"),
        ("axes: {model: resnet20}", "axis 'model' needs a non-empty list"),
        ("axes: {policy: [fast]}", "policy 'fast' is not defined"),
        ("base: [epochs]", "grid key base must be dict"),
        ("seeds: 0", "bad.yaml: seeds must be at least 1, got 0"),
        ("axes: {seed: [0, 1]}", "axis 'seed' is set for each run by the study; for seeds, use seeds: N"),
        ("description: old", "unknown grid key(s) description"),
        (
            "axes: {lr: [0.1, 0.01], policy: [p]}\npolicies: {p: {lr: 0.05, schedule: constant}}",
            "bad.yaml: policy p sets lr, which is also an axis: set it in one place",
        ),
        ("preset: cifar", "bad.yaml: unknown training preset 'cifar'; choose one of: cifar10, fast, mnist"),
        ("axes: {model: [resnet20]}\nbase: {lr: {per: colour, red: 1}}", "base: lr: 'per: colour' names no axis"),
        ("axes: {optimizer: [sgd, adam]}\nbase: {lr: {per: optimizer, sgd: 0.1}}", "(no value for adam)"),
        (
            "axes: {policy: [p], optimizer: [sgd]}\npolicies: {p: {lr: {per: optimizer, sgd: 1, adamw: 2}}}",
            "policy p: lr: one value per optimizer is needed (adamw is not a value of it)",
        ),
    ],
)
def test_bad_grid(tmp_path, grid, message):
    (tmp_path / "bad.yaml").write_text(f"name: bad\n{grid}\n")
    with pytest.raises(UserError, match=re.escape(message)):
        study.load_grid(str(tmp_path / "bad.yaml"))


def test_a_grid_that_would_train_one_setting_under_two_names_is_refused(tmp_path):
    (tmp_path / "g.yaml").write_text("axes: {dataset: [mnist], label_smoothing: [0.1, 1e-1], epochs: [1, 2]}\n")
    grid = study.load_grid(str(tmp_path / "g.yaml"))
    with pytest.raises(UserError, match="runs mnist-0.1-1-s0 and mnist-1e-1-1-s0 have the same settings"):
        study.expand(grid, tmp_path, {})
    with pytest.raises(UserError, match="grid g: --epochs sets one of its axes for every run"):
        study.expand(grid, tmp_path, {"epochs": 3})


@pytest.mark.parametrize(("axis", "message"), [("model", "unknown model 'resnet21'"), ("dataset", "unknown dataset")])
def test_a_grid_naming_an_unknown_model_or_dataset_fails_before_anything_is_written(tmp_path, axis, message):
    (tmp_path / "bad.yaml").write_text(f"name: bad\naxes: {{{axis}: [resnet21]}}\n")
    result = run_cli("study", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()


def test_tiny_study_and_report_agree_with_the_runs(tmp_path, data_dir):
    grid = write_grid(tmp_path, data_dir, models="[resnet20, resnet32]")  # a VGG would take twice the time
    result = run_cli("study", str(grid), "--runs-dir", "st", "--report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\[\d/4\] .* \| elapsed .* \| left ", result.stdout)
    assert "wrote st/report.md and st/report.html" in result.stdout
    md = (tmp_path / "st/report.md").read_text()
    assert "Study g: a check of two policies, on 256 images" in md
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in md.splitlines()
        if line.startswith(("| resnet20", "| resnet32"))
    }
    for model in ("resnet20", "resnet32"):
        for policy in ("lr0.01", "scheduler"):
            summary = json.loads((tmp_path / f"st/mnist-{model}-{policy}-s0/summary.json").read_text())
            assert summary["status"] == "finished"
            assert f"{summary['final_test_acc']:.2f} (n=1)" in rows[model]
    [finder_path] = (tmp_path / "st/lr_finder").glob("mnist-resnet20-sgd-*/result.json")
    finder = json.loads(finder_path.read_text())
    config = (tmp_path / "st/mnist-resnet20-scheduler-s0/config.yaml").read_text()
    assert f"lr: {finder['suggested_lr']}" in config
    for section in (
        "Accuracy by model",
        "Best policy per model",
        "Training curves",
        "LR finder",
        "LR schedules used",
        "Confusion matrices",
        "Most confused pairs",
        "Speed and size",
        "Diverged, unfinished and missing",
    ):
        assert section in md, section  # fmt: skip
    assert "99.37" in md  # the study's published MNIST ResNet20 figure stands beside ours
    html = (tmp_path / "st/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "<table>" in html


def test_killed_study_finishes_every_run_exactly_once(tmp_path, data_dir):
    grid = write_grid(tmp_path, data_dir, seeds=2)
    command = [sys.executable, "-m", "deepernets", "study", str(grid), "--runs-dir", "st"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "st/mnist-resnet20-lr0.01-s0"
    second = tmp_path / "st/mnist-resnet20-lr0.01-s1"
    deadline = time.time() + 300
    while time.time() < deadline and not (second / "log.txt").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((first / "summary.json").read_text())["status"] == "finished"
    finished_log = (first / "log.txt").read_text()

    again = run_cli("study", str(grid), "--runs-dir", "st", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 already done" in again.stdout
    assert (first / "log.txt").read_text() == finished_log
    runs = [p for p in (tmp_path / "st").iterdir() if (p / "config.yaml").exists()]
    assert len(runs) == 4
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["epochs_completed"] == 2
        assert len((run / "metrics.csv").read_text().splitlines()) == 3
        assert starts(run) == (2 if run == second else 1)  # the killed run started once more, the rest once


@pytest.mark.parametrize(
    "shards", [pytest.param(("0/1", "0/1"), marks=pytest.mark.slow), ("0/2", "1/2")], ids=["same-runs", "sharded"]
)
def test_two_workers_on_one_folder_run_each_run_once(tmp_path, data_dir, shards):
    """Two workers at once: unsharded they meet on every run (the locks decide), sharded they split the grid."""
    grid = write_grid(tmp_path, data_dir, seeds=2)
    command = [sys.executable, "-m", "deepernets", "study", str(grid), "--runs-dir", "st"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers share the cores instead of fighting over them
    workers = [
        subprocess.Popen(
            command + ["--shard", shard],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for shard in shards
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    runs = [p for p in (tmp_path / "st").iterdir() if (p / "config.yaml").exists()]
    assert len(runs) == 4
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        assert starts(run) == 1, run.name
    if shards == ("0/2", "1/2"):  # disjoint shares: neither worker ever meets the other's runs
        assert all("[2/2]" in out and "another worker is running it" not in out for out, _ in outputs)


def test_a_study_that_cannot_run_fails_once_before_the_first_run(tmp_path, data_dir):
    corrupt = tmp_path / "data" / "mnist"
    corrupt.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (corrupt / name).write_bytes(b"not an IDX file")
    grid = write_grid(tmp_path, tmp_path / "data", models="[resnet20, vgg11_bn]")
    result = run_cli("study", str(grid), "--out", "st", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "train-images-idx3-ubyte" in result.stderr
    assert "[1/4]" not in result.stdout and not list(tmp_path.glob("st/mnist-*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("flag, message", [("--cuda-graphs", "--cuda-graphs needs a CUDA GPU"),
                                           ("--precision=fp16", "--precision fp16 needs a CUDA GPU")])  # fmt: skip
def test_a_setting_this_machine_cannot_run_stops_the_study_before_the_first_run(tmp_path, data_dir, flag, message):
    grid = write_grid(tmp_path, data_dir)
    result = run_cli("study", str(grid), "--runs-dir", "st", flag, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"deepernets: error: {message}")
    assert "[1/" not in result.stdout and not list(tmp_path.glob("st/mnist-*"))


def test_a_run_that_fails_with_any_error_is_recorded_and_the_study_goes_on(tmp_path, data_dir, monkeypatch):
    from deepernets.train import fit

    real_train = fit.train

    def train(config, **kwargs):
        if config.model == "resnet32":  # a second model, cheap to train for real later
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(a second line)")
        return real_train(config, **kwargs)

    monkeypatch.setattr(fit, "train", train)
    grid = study.load_grid(str(write_grid(tmp_path, data_dir, models="[resnet32, resnet20]")))
    lines: list[str] = []
    counts = study.run_study(grid, tmp_path / "st", {"epochs": 1}, log=lines.append)
    assert counts["failed"] == 2 and counts["finished"] == 2
    failures = json.loads((tmp_path / "st/failures.json").read_text())
    assert sorted(failures) == ["mnist-resnet32-lr0.01-s0", "mnist-resnet32-scheduler-s0"]
    assert failures["mnist-resnet32-lr0.01-s0"]["error"] == (
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (a second line)"
    )
    from deepernets import report

    md = report.build([tmp_path / "st"], tmp_path / "st")[0].read_text()
    assert "| st/mnist-resnet32-lr0.01-s0 | failed | 0 | RuntimeError: mat1 and mat2" in md
    monkeypatch.setattr(fit, "train", real_train)
    counts = study.run_study(grid, tmp_path / "st", {"epochs": 1}, log=lines.append)
    assert counts["finished"] == 2 and counts["skipped"] == 2
    assert json.loads((tmp_path / "st/failures.json").read_text()) == {}, "a run that finished is no longer failed"


def test_a_later_invocation_adds_to_the_plan_instead_of_replacing_it(tmp_path):
    """study.json accumulates: a second invocation with fewer seeds keeps the third seed's run in the plan."""
    grid = study.load_grid(str(write_grid(tmp_path, tmp_path)))
    st = tmp_path / "st"
    study.write_manifest(grid, st, study.expand(grid, st, {}, seeds=3))
    study.write_manifest(grid, st, study.expand(grid, st, {}, seeds=2))
    runs = json.loads((st / "study.json").read_text())["runs"]
    names = [r["name"] for r in runs]
    assert len(names) == len(set(names)) == 6
    assert "mnist-resnet20-scheduler-s2" in names
    assert {r["cell"]["policy"] for r in runs} == {"lr0.01", "scheduler"}
    assert all(r["config"]["epochs"] == 2 for r in runs)  # the planned settings travel with each run
    with pytest.raises(UserError, match="epochs"):  # the same run names with other settings: refused, not mixed
        study.write_manifest(grid, st, study.expand(grid, st, {"epochs": 3}, seeds=1))
    assert json.loads((st / "study.json").read_text())["runs"] == runs
    for r in runs:  # a plan from a version of deepernets without some setting still takes the same runs
        del r["config"]["label_smoothing"]
    (st / "study.json").write_text(json.dumps({"runs": runs}))
    study.write_manifest(grid, st, study.expand(grid, st, {}, seeds=3))
    compiled = study.expand(grid, st, {"compile": True}, seeds=3)  # how a run is done: the same runs, resumable
    assert [p.name for p in compiled] == names and all(p.config.compile for p in compiled)
    study.write_manifest(grid, st, compiled)


def test_a_plan_holding_a_folder_dataset_as_typed_takes_the_same_runs_by_their_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = study.load_grid(str(write_grid(tmp_path, tmp_path)))
    grid.axes["dataset"] = ["folder:imgs"]
    planned = study.expand(grid, tmp_path / "st", {}, seeds=1)
    assert {p.config.dataset for p in planned} == {f"folder:{tmp_path / 'imgs'}"}
    study.write_manifest(grid, tmp_path / "st", planned)
    plan = json.loads((tmp_path / "st/study.json").read_text())
    for run in plan["runs"]:  # as an older version wrote it
        run["config"]["dataset"] = "folder:imgs"
    (tmp_path / "st/study.json").write_text(json.dumps(plan))
    study.write_manifest(grid, tmp_path / "st", planned)


MANIFEST_WORKER = """
import sys, time
from pathlib import Path
from deepernets import study
grid_path, st, go, model = sys.argv[1:]
grid = study.load_grid(grid_path)
grid.axes["model"] = [model]
planned = study.expand(grid, Path(st), {}, seeds=20)
while not Path(go).exists():
    time.sleep(0.005)
for seed in range(20):  # new runs in every write, so a write that drops another's runs loses them for good
    study.write_manifest(grid, Path(st), [p for p in planned if p.cell["seed"] == seed])
"""


def test_workers_starting_at_once_all_land_in_the_plan(tmp_path):
    """Shard workers start together: each one's read-merge-write of study.json must keep the others' runs."""
    grid = write_grid(tmp_path, tmp_path)
    models = ["resnet20", "resnet32", "resnet44", "resnet56"]
    args = [str(grid), str(tmp_path / "st"), str(tmp_path / "go")]
    workers = [subprocess.Popen([sys.executable, "-c", MANIFEST_WORKER, *args, model]) for model in models]
    time.sleep(3)  # let every worker import and wait at the start line
    (tmp_path / "go").touch()
    assert all(w.wait(timeout=120) == 0 for w in workers)
    names = {r["name"] for r in json.loads((tmp_path / "st/study.json").read_text())["runs"]}
    assert names == {f"mnist-{m}-{p}-s{s}" for m in models for p in ("lr0.01", "scheduler") for s in range(20)}


@pytest.mark.parametrize("command", ["train", "lr-find", "study"])
def test_every_command_names_the_folder_of_runs_runs_dir(command, capsys):
    from deepernets.cli import build_parser

    grid = ["tiny"] if command == "study" else []
    args = build_parser().parse_args([command, *grid, "--runs-dir", "elsewhere"])
    assert args.runs_dir == "elsewhere"
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    usage = capsys.readouterr().out
    assert "--runs-dir" in usage and "--out" not in usage
    if command == "study":  # the old flag still works, unlisted
        assert build_parser().parse_args(["study", "tiny", "--out", "old"]).runs_dir == "old"


@pytest.mark.parametrize(
    "flags, folder",
    [([], "runs/seed-quick"), (["--budget", "780s"], "runs/seed-quick"),
     (["--budget", "30m", "--epochs", "2"], "runs/seed-quick-e2-b30m"),
     (["--budget", "30m", "--runs-dir", "mine"], "mine")],
)  # fmt: skip
def test_a_budget_other_than_the_grids_gets_a_study_folder_of_its_own(monkeypatch, flags, folder):
    from deepernets import cli

    planned = []
    monkeypatch.setattr(study, "dry_run", lambda grid, study_dir, *rest: planned.append(study_dir))
    assert cli.main(["study", "seed-quick", "--dry-run", *flags]) == 0
    assert planned == [Path(folder)]


def budget_grid(tmp_path: Path, extra: str = "") -> study.Grid:
    (tmp_path / "b.yaml").write_text(
        "budget: 2m\naxes: {dataset: [mnist, cifar10], model: [resnet20, resnet44]}\n"
        "base: {epochs: 2, batch_size: 50, test_subset: 300, precise_bn: 2,\n"
        "       subset: {per: dataset, mnist: 1000, cifar10: 3000}}\n" + extra
    )
    return study.load_grid(str(tmp_path / "b.yaml"))


def fake_probe(probed: list[str], splits: dict[str, int] | None = None) -> Callable:
    """resnet44 trains at half resnet20's speed; no training needed to test the arithmetic. `splits`: the training
    images of each dataset (default 50,000)."""
    from deepernets.study.probe import Probe

    def probe(config):
        probed.append(config.model)
        speed = 100.0 if config.model == "resnet20" else 50.0
        split = (splits or {}).get(config.dataset, 50_000)
        return Probe(speed, split, test_images=300, low_res_images_per_s=4 * speed if config.low_res else None)

    return probe


def test_a_budget_scales_every_subset_by_one_factor_and_keeps_it(tmp_path):
    from deepernets.study import budget
    from deepernets.study.probe import cached

    grid = budget_grid(tmp_path)
    planned = study.expand(grid, tmp_path, {})
    probed = []
    probe = fake_probe(probed)
    sized = budget.fit(planned, grid, tmp_path, cached(probe), lambda line: None)
    assert sorted(probed) == ["resnet20", "resnet20", "resnet44", "resnet44"]  # one probe per model and dataset
    factor = json.loads((tmp_path / "budget.json").read_text())["factor"]
    # 120 s less 4 runs' overhead and their evaluation (2 epochs × 300 test images and 2 batches of 50 for the
    # batch-norm statistics, at 3× speed), over the training
    evaluation = 2 * (300 + 2 * 50) / 3 * (2 / 100 + 2 / 50)
    training = 2 * (1000 + 3000) * (1 / 100 + 1 / 50)
    assert factor == pytest.approx((120 - 4 * budget.RUN_OVERHEAD_S - evaluation) / training, rel=0.02)
    assert {(p.config.dataset, p.config.subset) for p in sized} == {
        ("mnist", round(1000 * factor, -2)),
        ("cifar10", round(3000 * factor, -2)),
    }
    again = budget.fit(planned, grid, tmp_path, cached(probe), lambda line: None)  # a restart: no new probe
    assert len(probed) == 4 and [p.config for p in again] == [p.config for p in sized]
    more = study.expand(grid, tmp_path, {}, seeds=2)  # sized for one seed, the factor would overrun with two
    with pytest.raises(UserError, match=r"holds other runs \(another grid, or other seeds\) sized to its budget"):
        budget.fit(more, grid, tmp_path, cached(probe), lambda line: None)
    same = dataclasses.replace(grid, budget="120s")  # the same budget in other words: the same folder and sizing
    assert [p.config for p in budget.fit(planned, same, tmp_path, cached(probe), lambda line: None)] == [
        p.config for p in sized
    ]

    other = dataclasses.replace(grid, budget="3m")
    with pytest.raises(UserError, match=r"sized to a budget of 2m: run it with that budget, or give a budget of 3m"):
        budget.fit(planned, other, tmp_path, cached(probe), lambda line: None)
    assert json.loads((tmp_path / "budget.json").read_text())["budget"] == "2m"  # the folder's sizing is kept

    short = dataclasses.replace(grid, budget="20s")
    with pytest.raises(
        UserError,
        match=r"budget 20s is too short for study b here: give it at least \d+m \(budget: in the grid, or --budget\)",
    ):
        budget.fit(planned, short, tmp_path / "elsewhere", cached(probe), lambda line: None)
    assert budget.seconds("1.5h") == 5400 and budget.seconds("90") == 90


def test_a_budget_gives_no_run_more_images_than_its_dataset_has_and_the_time_left_to_the_others(tmp_path):
    from deepernets.study import budget
    from deepernets.study.probe import cached

    # mnist 1,000 and cifar10 3,000 images, 2 epochs, resnet20 and resnet44: ten minutes would give ×2.4
    grid = dataclasses.replace(budget_grid(tmp_path), budget="10m")
    planned = study.expand(grid, tmp_path, {})
    lines: list[str] = []
    sized = budget.fit(planned, grid, tmp_path, cached(fake_probe([], {"mnist": 1_500})), lines.append)
    kept = json.loads((tmp_path / "budget.json").read_text())
    evaluation = 2 * (300 + 2 * 50) / 3 * (2 / 100 + 2 / 50)
    left = 600 - 4 * budget.RUN_OVERHEAD_S - evaluation
    per_image = 2 * (1 / 100 + 1 / 50)  # both models, 2 epochs
    assert kept["factor"] == pytest.approx((left - 1_500 * per_image) / (3_000 * per_image), rel=0.02)
    assert kept["factor"] > 1.5 and kept["splits"] == {"mnist": 1_500, "cifar10": 50_000}
    assert {(p.config.dataset, p.config.subset) for p in sized} == {
        ("mnist", 1_500),
        ("cifar10", round(3_000 * kept["factor"], -2)),
    }
    assert "mnist 1,500 (all of them)" in lines[-1]
    again = budget.fit(planned, grid, tmp_path, cached(fake_probe([], {"mnist": 1_500})), lambda line: None)
    assert [p.config for p in again] == [p.config for p in sized], "a restart sizes them alike, from budget.json"

    splits = {"mnist": 1_100, "cifar10": 3_600}  # all of them take less than the budget: ×1.2 gives cifar10 its all
    every = budget.fit(planned, grid, tmp_path / "all", cached(fake_probe([], splits)), lambda line: None)
    assert {(p.config.dataset, p.config.subset) for p in every} == {("mnist", 1_100), ("cifar10", 3_600)}
    assert json.loads((tmp_path / "all/budget.json").read_text())["factor"] == pytest.approx(1.2)

    older = {k: v for k, v in kept.items() if k != "splits"}  # a budget.json of an earlier version: no caps
    (tmp_path / "older").mkdir()
    (tmp_path / "older/budget.json").write_text(json.dumps(older))
    resumed = budget.fit(planned, grid, tmp_path / "older", cached(fake_probe([], {"mnist": 1_500})), len)
    assert ("mnist", round(1_000 * kept["factor"], -2)) in {(p.config.dataset, p.config.subset) for p in resumed}


def test_the_estimate_counts_the_ema_models_test_and_flip_tta_s_mirrored_images(tmp_path):
    from deepernets.study.estimate import estimate_parts

    grid = budget_grid(tmp_path)
    plain = study.expand(grid, tmp_path, {})[2:3]  # cifar10, resnet20: 100 images/s
    featured = [dataclasses.replace(plain[0], config=plain[0].config.replace(ema=0.999, tta="flip"))]
    ((train, other),) = estimate_parts(plain, grid, fake_probe([]))
    ((train_featured, other_featured),) = estimate_parts(featured, grid, fake_probe([]))
    # 2 epochs: 300 test images and 2 batches of 50 for the statistics, at 3× the training speed; the EMA model
    # again (its own statistics and test), and the 300 mirrored images
    assert other == pytest.approx(2 * (300 + 2 * 50) / 3 / 100)
    assert other_featured == pytest.approx(2 * (3 * 300 + 2 * 2 * 50) / 3 / 100)
    assert train_featured == train


def test_the_estimate_times_the_low_res_epochs_at_the_speed_probed_at_their_size(tmp_path):
    from deepernets.study.estimate import estimate_parts

    grid = budget_grid(tmp_path)
    plain = study.expand(grid, tmp_path, {})[2:3]  # cifar10, resnet20, 2 epochs of 3,000 images: 100 images/s
    progressive = [dataclasses.replace(plain[0], config=plain[0].config.replace(low_res=16, low_res_epochs=1))]
    ((train, _),) = estimate_parts(plain, grid, fake_probe([]))
    ((train_progressive, _),) = estimate_parts(progressive, grid, fake_probe([]))  # at --low-res: 400 images/s
    assert (train, train_progressive) == (pytest.approx(2 * 3000 / 100), pytest.approx(3000 / 400 + 3000 / 100))


def test_the_probe_times_low_res_steps_through_the_model_that_training_builds(data_dir, monkeypatch):
    from deepernets.study.probe import probe
    from deepernets.train import speed

    timed = []  # the model and the size of the batches of each timing

    def record(parts, config, precision, steps, warmup):
        timed.append((parts.model, next(iter(parts.train_batches))[0].shape[-1]))
        return 100.0 * len(timed)

    monkeypatch.setattr(speed, "measure_speed", record)
    config = RunConfig(dataset="mnist", data_dir=str(data_dir), subset=128, test_subset=64, batch_size=32, epochs=2,
                       image_size=20, low_res=12, low_res_epochs=1, device="cpu")  # fmt: skip
    result = probe(config.validate())
    assert [size for _, size in timed] == [20, 12] and timed[0][0] is timed[1][0], "one model, built for 20×20"
    assert (result.images_per_s, result.low_res_images_per_s) == (100.0, 200.0)


def test_the_estimate_counts_a_range_test_only_where_the_study_folder_lacks_it(tmp_path):
    from deepernets.study.auto_lr import finished_range_tests, lr_finder_key
    from deepernets.study.estimate import estimate_parts

    grid = budget_grid(tmp_path)
    auto = [dataclasses.replace(p, config=p.config.replace(lr="auto")) for p in study.expand(grid, tmp_path, {})[2:3]]
    ((_, with_test),) = estimate_parts(auto, grid, fake_probe([]))
    key = lr_finder_key(auto[0].config)
    (tmp_path / "lr_finder" / key).mkdir(parents=True)
    (tmp_path / "lr_finder" / key / "result.json").write_text("{}")
    assert finished_range_tests(tmp_path) == {key}
    ((_, without_test),) = estimate_parts(auto, grid, fake_probe([]), finished_range_tests(tmp_path))
    assert with_test - without_test == pytest.approx(grid.lr_finder_steps * 50 / 100)  # steps × batch at 100 img/s


def test_range_tests_that_differ_in_their_shifts_are_not_shared():
    from deepernets.study.auto_lr import lr_finder_key

    config = RunConfig(dataset="cifar10", lr="auto")
    keys = {lr_finder_key(config.replace(shift=shift)) for shift in (None, 0, 2)}
    assert len(keys) == 3


def test_a_budget_that_gives_fewer_images_than_the_cells_need_names_one_that_would(tmp_path):
    from deepernets.study import budget
    from deepernets.study.probe import cached

    grid = budget_grid(tmp_path, "enough_images: {cifar10: 6000}\n")
    planned = study.expand(grid, tmp_path, {})
    lines: list[str] = []
    budget.fit(planned, grid, tmp_path / "a", cached(fake_probe([])), lines.append)
    [warning] = [line for line in lines if "fewer training images" in line]
    found = re.search(r"\(cifar10 [\d,]+ of 6,000\): a budget of about (\d+)m would give them here", warning)
    assert found, warning
    lines.clear()
    budget.fit(planned, grid, tmp_path / "a", cached(fake_probe([])), lines.append)  # a restart says it again
    assert lines[-1] == warning

    enough = dataclasses.replace(grid, budget=f"{found[1]}m")
    lines.clear()
    sized = budget.fit(planned, enough, tmp_path / "b", cached(fake_probe([])), lines.append)
    assert all(p.config.subset >= 6000 for p in sized if p.config.dataset == "cifar10")
    assert not any("fewer training images" in line for line in lines)

    with pytest.raises(UserError, match="enough_images: cifar10 must be a whole number of images, got 'many'"):
        budget_grid(tmp_path, "enough_images: {cifar10: many}\n")
