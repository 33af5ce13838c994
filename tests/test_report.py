"""The report on hand-made run folders (written by the real RunDir writers): no training, so every case is quick."""

import json
import re
from pathlib import Path

from deepernets import report, study
from deepernets.config import RunConfig
from deepernets.rundir import RunDir

CLASSES = ["0", "1", "2"]


def fake_run(folder: Path, config: RunConfig, status: str = "finished", acc: float = 90.0) -> RunDir:
    """A run folder as training leaves it: config.yaml, metrics.csv, summary.json and confusion.csv."""
    run = RunDir(folder / (config.name or config.default_name()))
    config = config.replace(lr=0.351) if config.lr == "auto" else config  # training resolves the LR finder's pick
    run.write_config(config)
    done = config.epochs if status == "finished" else 1
    run.write_metrics(
        [
            {"epoch": e, "lr": 0.01, "train_loss": 1 / e, "train_acc": acc - 1, "val_loss": 1 / e, "val_acc": acc,
             "epoch_time_s": 10.0, "train_images_per_s": 100.0, "timestamp": "2026-01-01 00:00:00"}
            for e in range(1, done + 1)
        ]
    )  # fmt: skip
    run.write_summary(
        {"status": status, "epochs_completed": done, "final_test_acc": acc if status == "finished" else None,
         "train_images": config.subset or 1024, "test_images": 100, "parameters": 1000, "flops_per_image": 1e6,
         "device": "cpu", "precision": "fp32", "versions": {}, "lr_finder": None}
    )  # fmt: skip
    (run.path / "confusion.csv").write_text("true,0,1,2\n0,9,1,0\n1,0,10,0\n2,0,2,8\n")
    return run


def plan(st: Path, seeds: int, models: tuple[str, ...] = ("resnet20",), **overrides: object):
    grid = study.Grid(
        name="g",
        base={"epochs": 2, "batch_size": 64, "subset": 256, "test_subset": 100},
        axes={"dataset": ["mnist"], "model": list(models), "policy": ["lr0.01", "scheduler"]},
        policies={"lr0.01": {"lr": 0.01, "schedule": "constant"}, "scheduler": {"lr": "auto", "schedule": "onecycle"}},
    )
    return grid, study.expand(grid, st, overrides, seeds)


def accuracy_rows(md: str) -> dict[str, str]:
    return {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| resnet20")}


def test_a_run_outside_the_plan_is_named_and_stays_in_its_cell(tmp_path):
    """study.json of an older version: only the last invocation's seeds (not the third), and no settings."""
    st = tmp_path / "st"
    grid, planned = plan(st, seeds=3)
    for run in planned:
        fake_run(st, run.config, acc=90.0 + run.cell["seed"])
    old = [{"name": p.name, "cell": p.cell} for p in planned if p.cell["seed"] < 2]
    (st / "study.json").write_text(json.dumps({"grid": {}, "runs": old}))
    md = report.build([st], st)[0].read_text()
    assert "onecycle lr0.351" not in md  # not a column of its own: its cell's policy comes from the plan
    assert "| model | lr0.01 | scheduler | study (published, lr0.01 / scheduler) | reference |" in md
    row = accuracy_rows(md)["resnet20"]
    assert "91.00 ± 1.00 (n=3)" in row  # lr0.01 and scheduler: all three seeds together
    assert "not in the study's plan" in md
    assert re.search(r"st/mnist-resnet20-scheduler-s2 .*scheduler", md)


def test_a_cell_says_how_many_planned_seeds_did_not_finish(tmp_path):
    st = tmp_path / "st"
    grid, planned = plan(st, seeds=3)
    study.write_manifest(grid, st, planned)
    for run in planned:
        seed, policy = run.cell["seed"], run.cell["policy"]
        if policy == "lr0.01" and seed < 2:  # lr0.01: seed 2 never started
            fake_run(st, run.config, acc=90.0 + seed)
        if policy == "scheduler":  # scheduler: seed 0 finished, seed 1 diverged, seed 2 is still running
            fake_run(st, run.config, status=["finished", "diverged", "running"][seed], acc=95.0)
    md, html = (p.read_text() for p in report.build([st], st))
    row = accuracy_rows(md)["resnet20"]
    assert "90.50 ± 0.71 (n=2 of 3, 1 unfinished)" in row
    assert "95.00 (n=1 of 3, 1 diverged, 1 unfinished)" in row
    assert "n=2 of 3, 1 unfinished" in html


def test_merged_study_folders_keep_each_variant_apart(tmp_path):
    """`report A B` over two versions of one grid: the same run names, other settings (here the subset)."""
    folders = [tmp_path / "st-256", tmp_path / "st-512"]
    for folder, subset, acc in zip(folders, (256, 512), (80.0, 90.0), strict=True):
        grid, planned = plan(folder, seeds=1, subset=subset)
        study.write_manifest(grid, folder, planned)
        for run in planned:
            fake_run(folder, run.config, acc=acc).path.joinpath("confusion.csv").write_text(
                f"true,0,1,2\n0,{subset},1,0\n1,0,10,0\n2,0,2,8\n"  # each folder's matrix tells its own figure apart
            )
    md = report.build(folders, tmp_path)[0].read_text()
    images = re.findall(r"!\[(.*)\]\((.*)\)", md)
    assert len({path for _, path in images}) == len(images)  # no figure file stands for two figures
    confusions = [(caption, path) for caption, path in images if "confusion" in path]
    assert len(confusions) == 2
    for variant in ("256 train images", "512 train images"):
        for kind in ("curves", "schedules", "confusion"):
            assert any(variant in caption for caption, path in images if kind in path), (kind, variant)
        section = md.split("## Speed and size")[1].split("##")[0]
        assert any(variant in line for line in section.splitlines() if line.startswith("| mnist | resnet20"))
    assert len({(tmp_path / path).read_bytes() for _, path in confusions}) == 2
