import dataclasses
import re

import pytest

from deepernets import study
from deepernets.config import WHERE_SETTINGS, RunConfig
from deepernets.errors import UserError


def test_yaml_values_are_converted_to_each_settings_type():
    # PyYAML reads 5e-4 and 1e-3 as strings
    config = RunConfig.from_dict({"weight_decay": "5e-4", "lr": "1e-3", "epochs": "10", "model_options": None})
    assert (config.weight_decay, config.lr, config.epochs, config.model_options) == (5e-4, 1e-3, 10, {})
    assert RunConfig.from_dict({"lr": "auto"}).validate().lr == "auto"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "ten"}, "epochs must be int"),
        ({"nesterov": "yes"}, "nesterov must be bool"),
        ({"epochs": True}, "epochs must be int"),
        ({"lr": "fast"}, "--lr must be a number > 0 or 'auto', got 'fast'"),
        ({"lr": 0}, "--lr must be > 0, got 0.0"),
        ({"image_size": 16, "model": "vgg16"}, "too small for vgg16"),
        ({"milestones": [0.5, 1.5]}, "--milestones must each be in (0, 1), got 1.5"),
        ({"milestones": 0.5}, "milestones must be list[float]"),
        ({"device": "tpu"}, "--device must be auto, cpu or cuda[:N], got 'tpu'"),
        ({"ema": 1.0}, "--ema must be in [0, 1), got 1.0"),
        ({"momentum": 1}, "--momentum must be in [0, 1), got 1.0"),
        ({"warmup_epochs": 3, "epochs": 3}, "--warmup-epochs must be below --epochs (3), got 3.0"),
        ({"warmup_epochs": 1, "epochs": 3, "schedule": "onecycle"}, "onecycle rises to its peak by itself"),
        ({"cutout": 33}, "--cutout must be a square's side from 0 (off) to --image-size 32"),
        ({"cutout": -1}, "--cutout must be at least 0, got -1"),
        ({"low_res": 24}, "--low-res and --low-res-epochs go together: give both, or neither"),
        ({"low_res_epochs": 3}, "--low-res and --low-res-epochs go together"),
        ({"low_res": 32, "low_res_epochs": 3}, "--low-res must be from 8 pixels to below --image-size 32, got 32"),
        ({"low_res": 4, "low_res_epochs": 3}, "--low-res must be from 8 pixels to below --image-size 32, got 4"),
        ({"low_res": 24, "low_res_epochs": 3, "epochs": 3}, "--low-res-epochs must be below --epochs (3)"),
        ({"low_res": 24, "low_res_epochs": 3, "model": "vgg16_bn", "image_size": 40}, "--low-res 24 is too small"),
        (
            {"low_res": 16, "low_res_epochs": 3, "cutout": 20},
            "--cutout must be a square's side from 0 (off) to --low-res 16, got 20",
        ),
        ({"mixup": -0.2}, "--mixup must be at least 0, got -0.2"),
        ({"cutmix": -1}, "--cutmix must be at least 0, got -1.0"),
        ({"tta": "crop"}, "--tta must be none or flip, got 'crop'"),
        ({"cutmix": "inf"}, "--cutmix must be at least 0, got inf"),
        ({"lr": "inf"}, "--lr must be > 0, got inf"),
        ({"seed": -1}, "--seed must be in [0, 4,294,967,296), got -1"),
        ({"seed": 2**40}, "--seed must be in [0, 4,294,967,296), got 1099511627776"),
        ({"optimizer": "rmsprop"}, "--optimizer must be sgd, adam or adamw, got 'rmsprop'"),
        ({"model_options": ["head"]}, "model_options must be dict"),
        ({"colour": "red"}, "unknown setting(s) colour"),
        ({"name": "../elsewhere"}, "--name must be a folder name, without / and not . or .., got '../elsewhere'"),
        ({"name": ".."}, "--name must be a folder name"),
    ],
)
def test_bad_settings(values, message):
    with pytest.raises(UserError, match=re.escape(message)):
        RunConfig.from_dict(values).validate()


def test_a_config_file_that_is_not_text_is_one_line(tmp_path):
    from deepernets.config import load_yaml

    (tmp_path / "config.yaml").write_bytes(b"PK\x03\x04\xbf\xff")  # say, an export written over it
    with pytest.raises(UserError, match=r"cannot read config file .*config.yaml: it is not UTF-8 text"):
        load_yaml(tmp_path / "config.yaml")


def test_default_name_uses_the_folder_name_of_a_folder_dataset():
    config = RunConfig(dataset="folder:~/pets/", epochs=3)
    assert config.default_name() == "resnet20-pets-sgd-lr0.1-onecycle-e3-s0"


def test_a_folder_dataset_is_held_by_its_absolute_path_with_its_links_kept(tmp_path, monkeypatch):
    (tmp_path / "v3").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "v3")
    monkeypatch.chdir(tmp_path)
    older = RunConfig.from_dict({"dataset": "folder:current", "epochs": 3})  # a config.yaml of an older version
    assert older.dataset == f"folder:{tmp_path / 'current'}" and "-current-" in older.default_name()
    assert older.replace(epochs=4).dataset == older.dataset
    assert RunConfig(dataset="folder:").dataset == "folder:" and RunConfig().dataset == "cifar10"


def test_every_setting_has_one_flag_that_overrides_only_when_given():
    from deepernets import settings
    from deepernets.cli import build_parser
    from deepernets.config import ModelOptions

    parser = build_parser()
    args = parser.parse_args(["train"])
    assert settings.given(args, RunConfig) == {} and settings.given(args, ModelOptions) == {}
    declared = [name for name, (_, spec) in settings.specs(RunConfig).items() if spec.flag]
    assert len(declared) == len(dataclasses.fields(RunConfig)) - 1  # all but model_options, which has --head...
    args = parser.parse_args(["train", "--weight-decay", "5e-4", "--lr", "auto", "--milestones", "0.3", "0.6",
                              "--no-download", "--subset", "100", "--small-stem"])  # fmt: skip
    assert settings.given(args, RunConfig) == {
        "weight_decay": 5e-4, "lr": "auto", "milestones": [0.3, 0.6], "download": False, "subset": 100,
    }  # fmt: skip
    assert settings.given(args, ModelOptions) == {"small_stem": True}


def test_flags_go_over_the_preset_over_the_config_file_and_model_options_follow_their_model(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model: vgg11\nmodel_options: {head: classic}\nlr: 0.05\nepochs: 3\n")
    fast = study.run_preset_path("fast")
    config = RunConfig.from_sources([config_file, fast], {"epochs": 4}, {})
    assert (config.model_options, config.lr, config.nesterov, config.epochs) == ({"head": "classic"}, 0.1, True, 4)
    assert RunConfig.from_sources([config_file], {"model": "resnet20"}, {}).model_options == {}
    assert RunConfig.from_sources([config_file], {}, {"head": "compact"}).model_options == {"head": "compact"}


@pytest.mark.parametrize("preset", study.run_preset_names())
def test_every_shipped_training_preset_is_a_valid_run(preset):
    config = RunConfig.from_sources([study.run_preset_path(preset)], {}, {}).validate()
    if preset == "cifar10":  # the recipe's choices, as the README explains them
        assert (config.dataset, config.epochs, config.cutout, config.schedule) == ("cifar10", 50, 8, "onecycle")


def test_the_settings_that_may_change_on_resume_are_declared_with_their_settings():
    assert set(WHERE_SETTINGS) == {
        "data_dir",
        "download",
        "device",
        "compile",
        "cuda_graphs",
        "runs_dir",
        "tensorboard",
    }
