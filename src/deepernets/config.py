"""RunConfig: one object that fully describes a training run. The CLI, YAML files and the Python API build it."""

import dataclasses
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepernets.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle", "cosine", "multistep", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_PICKS = ("valley", "steep", "minimum_tenth", "minimum")  # which LR-finder suggestion `lr: auto` takes
TTAS = ("none", "flip")  # test-time augmentation reported beside the single-view accuracy
FOLDER_PREFIX = "folder:"  # a dataset named folder:PATH is read from an image folder


@dataclass
class RunConfig:
    model: str = "resnet20"
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"head": "classic"}, {"shortcut": "B"}
    dataset: str = "cifar10"
    data_dir: str | None = None
    download: bool = True
    image_size: int = 32  # input size; folder datasets are resized to it on load
    subset: int | None = None  # train on the first N images of a fixed shuffle of the training split
    test_subset: int | None = None
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | str = 0.1  # a number, or "auto" for the LR finder's suggestion
    lr_pick: str = "valley"  # which suggestion "auto" takes: valley, steep, minimum_tenth or minimum
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_epochs: float = 0.0  # cosine: linear warmup length
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions of training
    gamma: float = 0.1  # multistep and plateau: LR factor
    patience: int = 5  # plateau: epochs in a row without a better test loss tolerated; the LR drops after one more
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated beside them (0: off)
    cutout: int = 0  # side of the square zeroed at a random centre of each training image (0: off)
    mixup: float = 0.0  # alpha of mixup's Beta(alpha, alpha) mixing weight (0: off)
    cutmix: float = 0.0  # alpha of CutMix's Beta(alpha, alpha) mixing weight (0: off)
    tta: str = "none"  # "flip": also report the accuracy of the image and its mirror, softmax averaged
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False  # CUDA only: compile in "reduce-overhead" mode, which replays each step as CUDA graphs
    tensorboard: bool = False  # also write each epoch's scalars for TensorBoard into the run folder's tensorboard/
    name: str | None = None
    runs_dir: str = "runs"

    def validate(self) -> "RunConfig":
        """Raise UserError for the first invalid setting; return self so calls can chain."""
        from deepernets import data, models
        models.check(self.model, self.model_options)
        data.check_name(self.dataset)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("lr-pick", self.lr_pick, LR_PICKS)
        _choice("tta", self.tta, TTAS)
        if isinstance(self.lr, str):
            if self.lr != "auto":
                raise UserError(f"--lr must be a positive number or 'auto', got '{self.lr}'")
        elif not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        for name in ("subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1 or not 0 <= self.label_smoothing < 1:
            raise UserError("--weight-decay must be >= 0, and --momentum and --label-smoothing in [0, 1)")
        if self.image_size < (32 if self.model.startswith("vgg") else 8):
            raise UserError(f"--image-size {self.image_size} is too small for {self.model}: use at least 32")
        if not all(0 < m < 1 for m in self.milestones) or self.gamma <= 0:
            raise UserError("--milestones must be fractions of training between 0 and 1, and --gamma > 0")
        if self.patience < 0 or not 0 <= self.warmup_epochs < self.epochs:
            raise UserError("--patience must be >= 0 and --warmup-epochs in [0, epochs)")
        if not 0 <= self.ema < 1:
            raise UserError(f"--ema must be a decay in [0, 1), such as 0.999 (0: off), got {self.ema}")
        if not 0 <= self.cutout <= self.image_size:
            raise UserError(f"--cutout must be a square's side from 0 (off) to --image-size {self.image_size}, "
                            f"got {self.cutout}")  # fmt: skip
        if self.mixup < 0 or self.cutmix < 0:
            raise UserError("--mixup and --cutmix must be >= 0 (the alpha of their Beta distribution; 0: off)")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise UserError(f"--device must be auto, cpu or cuda[:N], got '{self.device}'")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise UserError("--tensorboard needs the tensorboard package: pip install 'deepernets[tensorboard]'")
        return self

    def default_name(self) -> str:
        dataset = dataset_slug(self.dataset)
        name = f"{self.model}-{dataset}-{self.optimizer}-lr{self.lr}-{self.schedule}-e{self.epochs}-s{self.seed}"
        # the optional training features name themselves only when on, so plain runs keep their names
        extras = {"ema": self.ema, "cutout": self.cutout, "mixup": self.mixup, "cutmix": self.cutmix}
        name += "".join(f"-{key}{value}" for key, value in extras.items() if value)
        return name + ("" if self.tta == "none" else f"-tta{self.tta}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "RunConfig":
        """Build from plain values (YAML), converting each to its setting's type: YAML reads 5e-4 as a string."""
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise UserError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(hints))}"
            )
        return cls(**{name: _coerce(source, name, value, hints[name]) for name, value in values.items()})

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)


def _coerce(source: str, name: str, value: Any, hint: Any) -> Any:
    options = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) else (hint,)
    for option in options:
        try:
            return _convert(value, option)
        except (TypeError, ValueError):
            continue
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise UserError(f"{source}: setting {name} must be {wanted}, got {value!r}")


def _convert(value: Any, option: Any) -> Any:
    """The value as `option`, or TypeError/ValueError; bools are never taken for numbers."""
    if option is type(None) and value is None:
        return None
    if isinstance(value, bool) != (option is bool):
        raise TypeError
    if option in (bool, str):
        if not isinstance(value, option):
            raise TypeError
        return value
    if option in (int, float):
        return option(str(value) if option is int else value)
    if typing.get_origin(option) is list:
        return [float(v) for v in value]
    if typing.get_origin(option) is dict:
        return dict(value or {})
    raise TypeError


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {what} '{value}'; choose one of: {', '.join(allowed)}")


def dataset_slug(name: str) -> str:
    """A dataset's name fit for file names: `folder:~/pets/` becomes `pets`."""
    return name.removeprefix(FOLDER_PREFIX).rstrip("/").split("/")[-1]


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read config file {path}: {e}".splitlines()[0]) from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold a mapping of settings")
    return values
