"""The CUDA path on a real GPU, with real MNIST images: `pytest -m cuda` (every test is skipped without CUDA).

On the GPU machine the data comes from $DEEPERNETS_DATA (see the README's "GPU sitting"). Each test trains
through the command line, as a user would, and checks outcomes: accuracy, the device and precision recorded
in summary.json, a resumed run's history. Bit equality is not expected on a GPU (cuDNN picks its algorithms).
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import kill_once_an_epoch_is_saved, run_cli

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# resnet20 reaches 97% on these 12,000 MNIST images in 2 epochs on CPU (tests/test_train_integration.py)
QUICK = ["--model", "resnet20", "--dataset", "mnist", "--epochs", "2", "--subset", "12000", "--test-subset", "2000"]
MIN_ACC = 97.0


def metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def train(tmp_path: Path, data_dir: Path, name: str, *args: str, timeout: float = 600) -> dict:
    result = run_cli("train", *args, "--device", "cuda", "--data-dir", str(data_dir), "--name", name, cwd=tmp_path,
                     timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    assert summary["status"] == "finished", summary
    assert summary["device"] == torch.cuda.get_device_name(0)
    assert summary["train_images_per_s"] > 0
    return summary


def test_default_precision_trains_evaluates_and_predicts_on_cuda(tmp_path, data_dir):
    summary = train(tmp_path, data_dir, "default", *QUICK)
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert (summary["precision"], summary["channels_last"]) == (expected, True)
    assert summary["final_test_acc"] >= MIN_ACC, summary
    run = tmp_path / "runs" / "default"
    state = torch.load(run / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())  # checkpoints load without a GPU

    evaluated = run_cli("evaluate", str(run), "--device", "cuda", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", evaluated.stdout).group(1))
    assert abs(accuracy - summary["final_test_acc"]) <= 0.2, (accuracy, summary["final_test_acc"])
    assert (run / "confusion.csv").exists() and "↔" in evaluated.stdout

    from PIL import Image

    from deepernets import data

    dataset = data.load("mnist", data_dir)
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(dataset.test_images[i, 0].numpy()).save(paths[-1])
    predicted = run_cli("predict", str(run), *map(str, paths), "--device", "cuda", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 8
    top = [line.split(": ")[1].split(" ")[0] for line in lines]
    correct = sum(t == str(int(dataset.test_labels[i])) for i, t in enumerate(top))
    assert correct >= 7, predicted.stdout


def test_fp16_trains_with_a_gradient_scaler(tmp_path, data_dir):
    summary = train(tmp_path, data_dir, "fp16", *QUICK, "--precision", "fp16")
    assert (summary["precision"], summary["channels_last"]) == ("fp16", True)
    assert summary["final_test_acc"] >= MIN_ACC, summary
    state = torch.load(tmp_path / "runs/fp16/checkpoints/last.pt", weights_only=True)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0


@pytest.mark.parametrize("flag", ["--compile", "--cuda-graphs"])
def test_compiled_training(tmp_path, data_dir, flag):
    summary = train(tmp_path, data_dir, "compiled", *QUICK, flag)
    assert summary["final_test_acc"] >= MIN_ACC, summary
    config = (tmp_path / "runs/compiled/config.yaml").read_text()
    assert f"{flag[2:].replace('-', '_')}: true" in config


def test_killed_run_resumes_to_the_same_epochs_and_history(tmp_path, data_dir):
    # all 60,000 training images: an epoch lasts seconds, so the kill lands inside the run
    args = ["--model", "resnet20", "--dataset", "mnist", "--epochs", "3", "--test-subset", "2000"]
    whole = train(tmp_path, data_dir, "whole", *args)

    killed = tmp_path / "runs" / "killed"
    command = ["train", *args, "--device", "cuda", "--data-dir", str(data_dir), "--name", "killed"]
    kill_once_an_epoch_is_saved(command, tmp_path, killed)
    done = len(metrics(killed))
    assert done in (1, 2), "the kill should land before the last epoch ends"
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"

    resumed = run_cli("train", *args, "--device", "cuda", "--data-dir", str(data_dir), "--name", "killed",
                      "--resume", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming runs/killed after epoch [12]\b", resumed.stdout), resumed.stdout
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 3
    rows, reference = metrics(killed), metrics(tmp_path / "runs" / "whole")
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference] == ["1", "2", "3"]
    assert [r["lr"] for r in rows] == [r["lr"] for r in reference]  # the schedule continued where it stopped
    assert summary["final_test_acc"] >= 98.0 and whole["final_test_acc"] >= 98.0
    assert abs(summary["final_test_acc"] - whole["final_test_acc"]) <= 1.0


def test_lr_find_on_cuda(tmp_path, data_dir):
    result = run_cli("lr-find", "--model", "resnet20", "--dataset", "mnist", "--subset", "8192", "--steps", "60",
                     "--device", "cuda", "--data-dir", str(data_dir), "--out", "finder", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    suggested = float(result.stdout.split("suggested LR ")[1].split(";")[0])
    assert 1e-5 < suggested < 10
    rows = list(csv.DictReader((tmp_path / "finder/lr_finder.csv").open()))
    assert 20 <= len(rows) <= 60
    assert (tmp_path / "finder/plots/lr_finder.png").exists()


def test_torchrun_one_process_trains_through_nccl(tmp_path, data_dir):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "deepernets",
               "train", *QUICK, "--device", "cuda", "--data-dir", str(data_dir), "--name", "ddp"]  # fmt: skip
    env = {**os.environ, "NCCL_DEBUG": "INFO"}  # NCCL names itself when the group's first collective starts it
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"NCCL INFO|NCCL version", output), output[-4000:]
    summary = json.loads((tmp_path / "runs/ddp/summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 1
    assert summary["device"] == torch.cuda.get_device_name(0)
    assert summary["final_test_acc"] >= MIN_ACC, summary
    state = torch.load(tmp_path / "runs/ddp/checkpoints/last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # the plain model's weights, not DDP's
