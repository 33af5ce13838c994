"""Data-parallel training under torchrun (gloo on CPU) on a real MNIST subset."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import run_cli

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_ranks_get_disjoint_shards_that_cover_the_epoch(tmp_path):
    script = Path(__file__).parent / "helpers" / "record_shards.py"
    result = subprocess.run([*TORCHRUN, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    shards = [set(map(int, (tmp_path / f"rank{r}.txt").read_text().split())) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 480  # 500 per rank, in whole batches of 32
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == 960


def test_torchrun_training_writes_once_and_resumes_in_one_process(tmp_path, data_dir):
    args = ["train", "--model", "resnet20", "--dataset", "mnist", "--subset", "2048", "--test-subset", "1000",
            "--epochs", "3", "--batch-size", "64", "--lr", "0.05", "--image-size", "20",
            "--data-dir", str(data_dir), "--name", "ddp"]  # fmt: skip
    proc = subprocess.Popen([*TORCHRUN, "-m", "deepernets", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    run = tmp_path / "runs" / "ddp"
    deadline = time.time() + 300
    while (
        time.time() < deadline
        and proc.poll() is None
        and len(metrics(run) if (run / "metrics.csv").exists() else []) < 2
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every worker: the whole job stops
    output = proc.communicate(timeout=120)[0]
    rows = metrics(run)
    assert len(rows) == 2, output
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["train_images"] == 2048
    log = (run / "log.txt").read_text().splitlines()
    assert sum(line.startswith("Epoch: 01") for line in log) == 1, "only rank 0 writes"
    # (a kill mid-write may leave the atomic writer's hidden temporary beside the intact file it was replacing)
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock" and not p.name.endswith(".tmp")) == [
        "checkpoints",
        "config.yaml",
        "log.txt",
        "metrics.csv",
        "summary.json",
    ]

    resumed = run_cli(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = metrics(run)
    assert len(after) == 3 and after[:2] == rows
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert not list(run.rglob("*.tmp")), "the resumed run removes what the kill left"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert len(state["history"]) == 3 and not any(k.startswith("module.") for k in state["model"])


def test_each_rank_draws_its_own_dropout_masks():
    from deepernets.data.batches import AUGMENT_STREAM, DROPOUT_STREAM, epoch_seed

    seeds = {epoch_seed(0, 3, DROPOUT_STREAM + rank) for rank in range(8)}
    augment = {epoch_seed(0, 3, AUGMENT_STREAM + rank) for rank in range(8)}
    assert len(seeds) == 8 and not seeds & augment
