"""Real training on real MNIST images from ../shared/data."""

import csv
import json
import subprocess

import pytest
import torch
import yaml
from conftest import kill_once_an_epoch_is_saved, kill_once_written, run_cli

FAST = ["--dataset", "mnist", "--epochs", "3", "--subset", "1024", "--test-subset", "1000", "--batch-size", "64",
        "--image-size", "20"]  # fmt: skip


def metrics(run) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_resnet20_learns_mnist(tmp_path, data_dir):
    args = ["--model", "resnet20", "--dataset", "mnist", "--epochs", "2", "--subset", "18000", "--test-subset", "2000",
            "--image-size", "16"]  # fmt: skip
    result = run_cli("train", *args, "--name", "r20", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Epoch: 02 | Epoch Time:" in result.stdout and "Val. Acc:" in result.stdout
    run = tmp_path / "runs" / "r20"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["final_test_acc"] >= 97.0, summary
    assert summary["final_test_acc"] == float(metrics(run)[-1]["val_acc"])
    assert summary["parameters"] == 269_434 and summary["train_images_per_s"] > 0
    for name in ("config.yaml", "confusion.csv", "per_class.csv", "checkpoints/last.pt", "plots/curves.png"):
        assert (run / name).exists(), name

    evaluated = run_cli("evaluate", str(run), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {summary['final_test_acc']:.2f}%" in evaluated.stdout
    assert "↔" in evaluated.stdout

    from PIL import Image

    from deepernets import data

    dataset = data.load("mnist", data_dir)
    digit = int(dataset.test_labels[0])
    Image.fromarray(dataset.test_images[0, 0].numpy()).save(tmp_path / "digit.png")
    predicted = run_cli("predict", str(run), str(tmp_path / "digit.png"), cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.split(": ")[1].startswith(f"{digit} "), predicted.stdout


def write_image_folder(root, data_dir, digits: dict[str, int], per_class: dict[str, int]) -> None:
    """Real MNIST digits as PNG files in root/SPLIT/CLASS/, with the litter real folders have: a hidden folder and
    macOS's ._NAME files, which are no images."""
    from PIL import Image

    from deepernets import data

    mnist = data.load("mnist", data_dir)
    for split, count in per_class.items():
        images, labels = getattr(mnist, f"{split}_images"), getattr(mnist, f"{split}_labels")
        for name, digit in digits.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in (labels == digit).nonzero()[:count, 0].tolist():
                Image.fromarray(images[i, 0].numpy()).save(folder / f"{i}.png")
            (folder / f"._{i}.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "train" / ".ipynb_checkpoints").mkdir()


def test_a_model_trained_on_an_image_folder_is_evaluated_and_used_from_anywhere(tmp_path, data_dir):
    write_image_folder(tmp_path / "digits", data_dir, {"three": 3, "seven": 7}, {"train": 1000, "test": 200})
    args = ["--dataset", "folder:digits", "--image-size", "20", "--no-flip", "--epochs", "1", "--batch-size", "32"]
    result = run_cli("train", *args, "--name", "own", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "own"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_test_acc"] >= 95.0, summary
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["dataset"] == f"folder:{tmp_path / 'digits'}" and config["flip"] is False
    with (run / "confidently_wrong.csv").open() as f:
        mistakes = csv.DictReader(f)
        assert "file" in mistakes.fieldnames
        wrong = list(mistakes)
        for mistake in wrong:  # each wrong image by its file, under its true class
            assert (tmp_path / "digits" / mistake["file"]).parent.name == mistake["true"], mistake

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = run_cli("evaluate", str(run), cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {summary['final_test_acc']:.2f}% on 400 images" in evaluated.stdout
    # sevens the test found right: at 95% or more, the 16 most confidently wrong images are nearly all the wrong ones
    # (the first seven on disk was one of them on an AMD EPYC Zen 4 in bf16)
    listed = {tmp_path / "digits" / mistake["file"] for mistake in wrong}
    sevens = [p for p in sorted((tmp_path / "digits" / "test" / "seven").glob("[0-9]*.png")) if p not in listed][:5]
    predicted = run_cli("predict", str(run), *map(str, sevens), cwd=elsewhere)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert len(lines) == 5 and all(line.split(": ")[1].startswith("seven ") for line in lines), predicted.stdout


def test_config_yaml_reproduces_the_run(tmp_path, data_dir):
    first = run_cli(
        "train", *FAST, "--model", "resnet20", "--epochs", "1", "--name", "a", "--data-dir", str(data_dir), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    again = run_cli("train", "--config", "runs/a/config.yaml", "--name", "b", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[r[k] for k in keys] for r in metrics(tmp_path / "runs/a")] == [
        [r[k] for k in keys] for r in metrics(tmp_path / "runs/b")
    ]


def kill_during_epoch_2_and_resume(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    """Train runs/killed with `args`, SIGKILL it once epoch 1 is saved, and resume it; return the resume's result."""
    killed = tmp_path / "runs" / "killed"
    kill_once_an_epoch_is_saved([*args, "--name", "killed"], tmp_path, killed)
    assert len(metrics(killed)) == 1, "the kill should land during epoch 2"
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"
    resumed = run_cli(*args, "--name", "killed", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    return resumed


def plain_and_with(
    args: list[str], feature: list[str], name: str, tmp_path
) -> tuple[list[dict], list[dict], subprocess.CompletedProcess]:
    """Train runs/plain with `args` and runs/NAME with the feature's flags added; return both runs' metrics rows,
    and the featured run's process (its console output)."""
    plain = run_cli(*args, "--name", "plain", cwd=tmp_path)
    featured = run_cli(*args, *feature, "--name", name, cwd=tmp_path)
    assert plain.returncode == 0 and featured.returncode == 0, plain.stderr + featured.stderr
    return metrics(tmp_path / "runs/plain"), metrics(tmp_path / f"runs/{name}"), featured


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir):
    # vgg11_bn has dropout, so this also checks that random draws are reproduced after a resume
    args = ["train", "--model", "vgg11_bn", "--dataset", "mnist", "--epochs", "3", "--subset", "256",
            "--test-subset", "256", "--batch-size", "64", "--data-dir", str(data_dir)]  # fmt: skip
    whole = run_cli(*args, "--name", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    kill_during_epoch_2_and_resume(args, tmp_path)
    keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in metrics(tmp_path / "runs/killed")] == [
        [r[k] for k in keys] for r in metrics(tmp_path / "runs/whole")
    ]
    a = torch.load(tmp_path / "runs/killed/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "runs/whole/checkpoints/last.pt", weights_only=True)["model"]
    assert same_tensors(a, b)

    # Killed between the last checkpoint and metrics.csv, then moved and renamed, with the `name: null` that older
    # versions saved: `--config RUN/config.yaml --resume` from another directory resumes RUN, and its metrics.csv
    # is the checkpoint's again.
    moved = tmp_path / "moved" / "renamed"
    moved.parent.mkdir()
    (tmp_path / "runs/whole").rename(moved)
    (moved / "metrics.csv").write_text("".join((moved / "metrics.csv").read_text().splitlines(True)[:3]))
    summary = json.loads((moved / "summary.json").read_text())
    (moved / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    (moved / "config.yaml").write_text((moved / "config.yaml").read_text().replace("name: whole", "name: null"))
    (tmp_path / "elsewhere").mkdir()
    resumed = run_cli("train", "--config", str(moved / "config.yaml"), "--resume", cwd=tmp_path / "elsewhere")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {moved} after epoch 3" in resumed.stdout and not (tmp_path / "elsewhere/runs").exists()
    assert [[r[k] for k in keys] for r in metrics(moved)] == [
        [r[k] for k in keys] for r in metrics(tmp_path / "runs/killed")
    ]
    assert json.loads((moved / "summary.json").read_text())["final_test_acc"] == float(metrics(moved)[-1]["val_acc"])


@pytest.mark.slow  # keeps the default run inside the CI budget; run with -m slow
def test_a_run_with_every_training_feature_on_resumes_to_equal_an_uninterrupted_one(tmp_path, data_dir):
    args = ["train", "--model", "resnet20", "--dataset", "cifar10", "--epochs", "3", "--subset", "512",
            "--test-subset", "500", "--batch-size", "64", "--ema", "0.9", "--cutout", "8", "--mixup", "0.2",
            "--cutmix", "1.0", "--tta", "flip", "--precise-bn", "4", "--data-dir", str(data_dir)]  # fmt: skip
    whole = run_cli(*args, "--name", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    kill_during_epoch_2_and_resume(args, tmp_path)
    keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "ema_val_loss", "ema_val_acc",
            "tta_val_loss", "tta_val_acc")  # fmt: skip
    rows = metrics(tmp_path / "runs/whole")
    assert all(r[k] for r in rows for k in keys)
    assert [[r[k] for k in keys] for r in metrics(tmp_path / "runs/killed")] == [[r[k] for k in keys] for r in rows]
    a = torch.load(tmp_path / "runs/killed/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "runs/whole/checkpoints/last.pt", weights_only=True)
    assert same_tensors(a["model"], b["model"]) and same_tensors(a["ema"], b["ema"])
    assert int(b["ema"]["n_averaged"]) == 3 * 8, "one update per step"


def test_precise_bn_changes_the_evaluated_statistics_and_nothing_the_training_does(tmp_path, data_dir):
    args = ["train", *FAST, "--model", "resnet20", "--epochs", "1", "--schedule", "constant", "--lr", "0.05",
            "--data-dir", str(data_dir)]  # fmt: skip
    rows, precise_rows, _ = plain_and_with(args, ["--precise-bn", "8"], "precise", tmp_path)
    trained = ("epoch", "lr", "train_loss", "train_acc")
    assert [[r[k] for k in trained] for r in precise_rows] == [[r[k] for k in trained] for r in rows]
    assert all(a["val_loss"] != b["val_loss"] for a, b in zip(rows, precise_rows, strict=True))

    a = torch.load(tmp_path / "runs/plain/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "runs/precise/checkpoints/last.pt", weights_only=True)["model"]
    statistics = {k for k in a if "running_" in k or "num_batches_tracked" in k}
    assert statistics and same_tensors(
        {k: a[k] for k in a.keys() - statistics}, {k: b[k] for k in b.keys() - statistics}
    )
    assert not torch.equal(a["bn1.running_mean"], b["bn1.running_mean"])

    # the saved statistics are the ones evaluated: `evaluate` gives the run's own final accuracy
    summary = json.loads((tmp_path / "runs/precise/summary.json").read_text())
    evaluated = run_cli("evaluate", "runs/precise", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {summary['final_test_acc']:.2f}%" in evaluated.stdout
    assert "precise_bn: 8" in (tmp_path / "runs/precise/config.yaml").read_text()


@pytest.mark.slow  # keeps the default run inside the CI budget; run with -m slow
def test_the_moving_average_is_reported_beside_an_unchanged_training_run(tmp_path, data_dir):
    args = ["train", *FAST, "--model", "resnet20", "--epochs", "2", "--subset", "512", "--test-subset", "500",
            "--data-dir", str(data_dir)]  # fmt: skip
    rows, ema_rows, averaged = plain_and_with(args, ["--ema", "0.9"], "ema", tmp_path)
    keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
    assert [[r[k] for k in keys] for r in ema_rows] == [[r[k] for k in keys] for r in rows]
    assert all(r["ema_val_acc"] == r["ema_val_loss"] == "" for r in rows)
    assert all(r["ema_val_loss"] != r["val_loss"] for r in ema_rows)
    summary = json.loads((tmp_path / "runs/ema/summary.json").read_text())
    assert summary["final_test_acc"] == json.loads((tmp_path / "runs/plain/summary.json").read_text())["final_test_acc"]
    assert summary["final_ema_test_acc"] == {
        "acc": float(ema_rows[-1]["ema_val_acc"]),
        "weights": "exponential moving average of the weights, decay 0.9",
    }
    assert "final_ema_test_acc" not in json.loads((tmp_path / "runs/plain/summary.json").read_text())
    assert f"EMA Acc: {float(ema_rows[-1]['ema_val_acc']):.2f}% (moving average of the weights)" in averaged.stdout
    assert "ema: 0.9" in (tmp_path / "runs/ema/config.yaml").read_text()
    a = torch.load(tmp_path / "runs/ema/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "runs/plain/checkpoints/last.pt", weights_only=True)
    assert same_tensors(a["model"], b["model"]) and b["ema"] is None


@pytest.mark.slow  # keeps the default run inside the CI budget; run with -m slow
def test_flip_tta_is_reported_beside_the_single_view_and_refused_for_digits(tmp_path, data_dir):
    args = ["train", "--model", "resnet20", "--dataset", "cifar10", "--epochs", "1", "--subset", "512",
            "--test-subset", "500", "--batch-size", "64", "--data-dir", str(data_dir)]  # fmt: skip
    result = run_cli(*args, "--tta", "flip", "--name", "tta", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "tta"
    (row,) = metrics(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_test_acc"] == float(row["val_acc"]), "the headline stays the single view"
    assert summary["final_tta_test_acc"] == {
        "acc": float(row["tta_val_acc"]),
        "views": "each image and its horizontal mirror, softmax averaged",
    }
    assert row["tta_val_loss"] != row["val_loss"]
    assert "TTA Acc:" in result.stdout and "with flip TTA" in result.stdout.splitlines()[-1]

    evaluated = run_cli("evaluate", str(run), "--tta", "flip", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    first = evaluated.stdout.splitlines()[0]
    assert f"test accuracy {summary['final_test_acc']:.2f}%" in first
    assert f"with flip TTA (image and mirror, softmax averaged) {float(row['tta_val_acc']):.2f}%" in first

    digits = run_cli("train", *FAST, "--epochs", "1", "--tta", "flip", "--data-dir", str(data_dir), "--name", "d",
                     cwd=tmp_path)  # fmt: skip
    assert digits.returncode == 2 and len(digits.stderr.splitlines()) == 1, digits.stderr
    assert "--tta flip: mnist is trained without horizontal flips" in digits.stderr
    assert not (tmp_path / "runs/d/config.yaml").exists()


def test_divergence_is_a_result_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
    # the LR jumps 1e30-fold after the first epoch
    args = ["train", *FAST, "--model", "resnet20", "--optimizer", "adam", "--schedule", "multistep",
            "--milestones", "0.34", "--gamma", "1e30", "--data-dir", str(data_dir), "--name", "boom"]  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "diverged" in result.stdout
    run = tmp_path / "runs" / "boom"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["final_test_acc"] is None
    good = summary["epochs_completed"]
    assert good >= 1 and len(metrics(run)) == good
    assert f"the run diverged; the checkpoint after epoch {good} is kept" in result.stdout
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert len(state["history"]) == good
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    from deepernets.train.artifacts import diverged_line

    assert diverged_line(0, "the loss became NaN").endswith("no epoch had finished, so no checkpoint is kept")


def test_lr_find_writes_history_plot_and_suggestion(tmp_path, data_dir):
    result = run_cli("lr-find", "--model", "resnet20", "--dataset", "mnist", "--subset", "4096", "--steps", "60",
                     "--image-size", "20", "--data-dir", str(data_dir), "--runs-dir", "finders", "--name", "one",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    suggested = float(result.stdout.split("suggested LR ")[1].split(";")[0])
    assert 1e-5 < suggested < 10
    assert (tmp_path / "finders/one/plots/lr_finder.png").exists()
    rows = list(csv.DictReader((tmp_path / "finders/one/lr_finder.csv").open()))
    assert 20 <= len(rows) <= 60


@pytest.mark.slow
def test_compiled_training_runs(tmp_path, data_dir):
    """torch.compile on CPU costs 30-50 s of compiling, so this runs only with `-m slow`."""
    result = run_cli("train", *FAST, "--model", "resnet20", "--epochs", "1", "--compile", "--data-dir", str(data_dir),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "final test accuracy" in result.stdout


def test_a_run_with_lr_auto_and_no_name_resumes_from_its_saved_config_with_its_range_test(tmp_path, data_dir):
    args = ["train", *FAST, "--model", "resnet20", "--epochs", "1", "--lr", "auto", "--data-dir", str(data_dir)]
    kill_once_written(args, tmp_path, "runs/*/summary.json")  # written once the range test has chosen the LR
    (run,) = (tmp_path / "runs").iterdir()
    assert "lrauto" in run.name
    assert not (run / "checkpoints" / "last.pt").exists(), "killed too late: the first epoch was saved"
    chosen = json.loads((run / "summary.json").read_text())["lr_finder"]["suggested_lr"]
    resume = ["train", "--config", str(run / "config.yaml"), "--resume"]
    resumed = run_cli(*resume, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "LR finder:" not in resumed.stdout, "the resumed run must keep the LR it chose, not test again"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["lr_finder"]["suggested_lr"] == chosen
    assert float(yaml.safe_load((run / "config.yaml").read_text())["lr"]) == chosen
    again = run_cli(*resume, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "has already finished" in again.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.name], "it must not start another run"


def test_training_loss_is_logged_as_plain_cross_entropy_beside_the_smoothed_one(tmp_path, data_dir):
    args = ["train", *FAST, "--model", "resnet20", "--epochs", "2", "--lr", "0.05", "--schedule", "constant",
            "--label-smoothing", "0.2"]  # fmt: skip
    result = run_cli(*args, "--data-dir", str(data_dir), "--name", "ls", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = metrics(tmp_path / "runs/ls")[-1]
    plain, smoothed = float(row["train_loss"]), float(row["train_loss_smoothed"])
    # the smoothed loss also pays for every wrong class's share of the 0.2; plain cross-entropy, as val_loss, does not
    assert plain < smoothed - 0.1, row
    assert f"with label smoothing: {smoothed:.3f}" in result.stdout
