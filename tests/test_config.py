import pytest

from deepernets.config import RunConfig
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
        ({"lr": "fast"}, "--lr must be a positive number or 'auto'"),
        ({"image_size": 16, "model": "vgg16"}, "too small for vgg16"),
        ({"milestones": [1.5]}, "--milestones"),
        ({"device": "tpu"}, "--device"),
        ({"ema": 1.0}, "--ema must be a decay in"),
        ({"cutout": 33}, "--cutout must be a square's side from 0 (off) to --image-size 32"),
        ({"cutout": -1}, "--cutout"),
        ({"mixup": -0.2}, "--mixup and --cutmix must be >= 0"),
        ({"cutmix": -1}, "--mixup and --cutmix must be >= 0"),
        ({"tta": "crop"}, "unknown tta 'crop'"),
        ({"colour": "red"}, "unknown setting(s) colour"),
    ],
)
def test_bad_settings(values, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.from_dict(values).validate()


def test_default_name_uses_the_folder_name_of_a_folder_dataset():
    config = RunConfig(dataset="folder:~/pets/", epochs=3)
    assert config.default_name() == "resnet20-pets-sgd-lr0.1-onecycle-e3-s0"
