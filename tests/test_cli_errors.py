"""Bad input: one line on stderr, exit code 2, no traceback, nothing already written damaged."""

import os
import pickle
import struct

import pytest
import torch
from conftest import run_cli

from deepernets import models
from deepernets.train import checkpoint


def assert_user_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--model", "resnet21"], ["unknown model 'resnet21'", "resnet20"]),
        (["--dataset", "imagenet"], ["unknown dataset 'imagenet'", "cifar10"]),
        (["--optimizer", "rmsprop"], ["--optimizer: must be sgd, adam or adamw, got 'rmsprop'"]),
        (["--schedule", "step"], ["--schedule: must be constant, onecycle", "got 'step'"]),
        (["--lr", "0"], ["--lr: must be > 0, got 0.0"]),
        (["--lr", "-0.1"], ["--lr: must be > 0, got -0.1"]),
        (["--lr", "fast"], ["--lr: must be a number > 0 or 'auto', got 'fast'"]),
        (["--epochs", "0"], ["--epochs: must be at least 1, got 0"]),
        (["--milestones", "0.5", "1.5"], ["--milestones: must each be in (0, 1), got 1.5"]),
        (["--head", "big"], ["--head: must be compact or classic, got 'big'"]),
        (["--preset", "slow"], ["unknown training preset 'slow'", "fast"]),
        (["--dataset", "folder:"], ["needs a path"]),
        (["--head", "classic", "--model", "resnet20"], ["no option head"]),
        (["--device", "cpu", "--cuda-graphs"], ["--cuda-graphs needs a CUDA GPU"]),
        (["--model", "resnet18", "--batch-size", "1", "--subset", "64"], ["--batch-size 1 is too small for resnet18"]),
    ],
)
def test_bad_flags(tmp_path, run_in_process, args, fragments):
    assert_user_error(run_in_process("train", "--dataset", "mnist", *args, cwd=tmp_path), *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--model", "resnet21"], ["unknown model 'resnet21'"]),
        (["train", "--dataset", "imagenet"], ["unknown dataset 'imagenet'"]),
        (["lr-find", "--model", "resnet21"], ["unknown model 'resnet21'"]),
        (["lr-find", "--steps", "10"], ["--steps: must be at least 20, got 10"]),
        (["study", "tiny", "--seeds", "0"], ["--seeds: must be at least 1, got 0"]),
        (["evaluate", "runs/x", "--tta", "crop"], ["--tta: must be none or flip, got 'crop'"]),
        (["bench", "--device", "cpu", "--variants", "cuda-graphs"], ["--variants cuda-graphs needs a CUDA GPU"]),
        (["bench", "--variants", "jit"], ["--variants: unknown jit; choose from eager, compile, cuda-graphs"]),
        (["bench", "--repeats", "0"], ["--repeats", "must be > 0, got 0"]),
        (["bench", "--steps", "0"], ["--steps", "must be > 0, got 0"]),
    ],
)
def test_bad_names_and_flags_of_every_command_are_refused_before_anything_is_written(
    tmp_path, run_in_process, args, fragments
):
    assert_user_error(run_in_process(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_lists_expected_files_and_where_it_looked(tmp_path):
    result = run_cli(
        "train", "--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path / "nowhere"),
        cwd=tmp_path, env={"DEEPERNETS_DATA": str(tmp_path / "empty")},
    )  # fmt: skip
    assert_user_error(result, "mnist not found", "train-images-idx3-ubyte", "nowhere", "empty")


def test_corrupt_dataset_file(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (folder / name).write_bytes(struct.pack(">II", 2049, 5) + bytes(2))  # truncated
    result = run_cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
                     env={"DEEPERNETS_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert_user_error(result, "MD5", "train-images-idx3-ubyte")


def test_folder_dataset_without_classes(tmp_path):
    (tmp_path / "imgs" / "train").mkdir(parents=True)
    (tmp_path / "imgs" / "test").mkdir()
    assert_user_error(
        run_cli("train", "--dataset", f"folder:{tmp_path / 'imgs'}", cwd=tmp_path), "has 0 class sub-folder(s)"
    )


def test_unreadable_checkpoint_is_reported_and_left_alone(tmp_path):
    run = tmp_path / "runs" / "broken"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: resnet20\ndataset: mnist\nname: broken\n")
    garbage = b"this is not a checkpoint"
    (run / "checkpoints" / "last.pt").write_bytes(garbage)
    for command in (["evaluate", str(run)], ["predict", str(run), "x.png"]):
        assert_user_error(run_cli(*command, cwd=tmp_path), "cannot read checkpoint", "last.pt")
    result = run_cli("train", "--config", str(run / "config.yaml"), "--resume", cwd=tmp_path)
    assert_user_error(result, "cannot read checkpoint")
    assert (run / "checkpoints" / "last.pt").read_bytes() == garbage
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == ["checkpoints", "config.yaml"]


class NotPlainData:  # any class will do: weights_only refuses every global it does not know
    pass


class RunsCode:
    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.mark.parametrize("content", ["custom class", "code"])
def test_malicious_checkpoint_is_one_line_naming_the_file_and_the_fix(tmp_path, content):
    run = tmp_path / "runs" / "evil"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: resnet20\ndataset: mnist\nname: evil\n")
    path = run / "checkpoints" / "last.pt"
    if content == "custom class":  # a checkpoint as torch.save writes it, with an object weights_only refuses
        torch.save({"format": checkpoint.FORMAT, "model": NotPlainData()}, path)
    else:  # a bare pickle that would run a command, as a hostile file would be
        path.write_bytes(pickle.dumps(RunsCode()))
    saved = path.read_bytes()
    for command in (
        ["evaluate", str(run)],
        ["predict", str(run), "x.png"],
        ["train", "--config", str(run / "config.yaml"), "--resume"],
    ):
        result = run_cli(*command, cwd=tmp_path)
        fix = "delete it and train the run again"
        assert_user_error(result, "cannot read checkpoint", "runs/evil/checkpoints/last.pt", "could run code", fix)
        assert "\x1b" not in result.stderr and "weights_only" not in result.stderr  # none of torch's advice
        assert "pwned" not in result.stdout
    assert path.read_bytes() == saved


def test_checkpoint_of_another_model_is_one_line(tmp_path, data_dir):
    run = tmp_path / "runs" / "other"
    (run / "checkpoints").mkdir(parents=True)
    settings = "model: resnet20\ndataset: mnist\nname: other\nsubset: 64\ntest_subset: 64\nbatch_size: 32\n"
    (run / "config.yaml").write_text(settings)
    path = run / "checkpoints" / "last.pt"
    state = {"epoch": 1, "history": [], "schedule": {}, "optimizer": {}, "lr_finder": None}
    state["model"] = models.build("resnet32", 1, 10).state_dict()  # plain data, but another model's weights
    state["data"] = {"classes": list("0123456789"), "mean": [0.1], "std": [0.3], "in_channels": 1, "image_size": 32}
    checkpoint.save(path, state)
    env = {"DEEPERNETS_DATA": str(data_dir), "DEEPERNETS_CACHE": str(tmp_path / "cache")}
    for command in (["evaluate", str(run)], ["train", "--config", str(run / "config.yaml"), "--resume"]):
        result = run_cli(*command, cwd=tmp_path, env=env)
        assert_user_error(result, "checkpoint", "runs/other/checkpoints/last.pt", "delete it and train the run again")


def test_a_dataset_that_no_longer_matches_the_checkpoint_is_refused(tmp_path, data_dir):
    # as when a folder dataset gained or lost a class since the run: every label would shift
    run = tmp_path / "runs" / "moved"
    (run / "checkpoints").mkdir(parents=True)
    settings = "model: resnet20\ndataset: mnist\nname: moved\nsubset: 64\ntest_subset: 64\nbatch_size: 32\n"
    (run / "config.yaml").write_text(settings)
    state = {"epoch": 1, "history": [], "schedule": {}, "optimizer": {}, "lr_finder": None}
    state["model"] = models.build("resnet20", 1, 10).state_dict()
    classes = [f"c{i}" for i in range(10)]
    state["data"] = {"classes": classes, "mean": [0.1], "std": [0.3], "in_channels": 1, "image_size": 32}
    checkpoint.save(run / "checkpoints" / "last.pt", state)
    env = {"DEEPERNETS_DATA": str(data_dir), "DEEPERNETS_CACHE": str(tmp_path / "cache")}
    resume = ["train", "--config", str(run / "config.yaml"), "--resume"]
    for command in (["evaluate", str(run)], ["export", str(run), "--format", "torchscript"], resume):
        result = run_cli(*command, cwd=tmp_path, env=env)
        assert_user_error(result, "mnist now has classes", "runs/moved was trained on ['c0'", "train a new run")
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == ["checkpoints", "config.yaml"]


def test_a_study_file_cut_short_is_one_line_naming_it(tmp_path):
    study = tmp_path / "runs" / "cut"
    study.mkdir(parents=True)
    (study / "study.json").write_text('{"runs": [')
    assert_user_error(run_cli("report", str(tmp_path / "runs"), cwd=tmp_path), "runs/cut/study.json is not valid JSON")


def test_existing_run_is_not_overwritten(tmp_path):
    run = tmp_path / "runs" / "taken"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: resnet20\n")
    result = run_cli("train", "--dataset", "mnist", "--name", "taken", cwd=tmp_path)
    assert_user_error(result, "already exists", "--resume")
    assert (run / "config.yaml").read_text() == "model: resnet20\n"


def test_unknown_setting_in_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("model: resnet20\nlearning_rate: 0.1\n")
    assert_user_error(run_cli("train", "--config", str(tmp_path / "c.yaml"), cwd=tmp_path), "learning_rate")


def test_argparse_errors_are_one_line(tmp_path):
    assert_user_error(run_cli("train", "--epochs", "two", cwd=tmp_path), "--epochs")
    assert_user_error(run_cli("fly", cwd=tmp_path), "invalid choice")
