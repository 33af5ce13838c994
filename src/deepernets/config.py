"""RunConfig: one object that fully describes a training run. The CLI, YAML files and the Python API build it."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepernets import data, models
from deepernets.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "onecycle", "cosine", "multistep", "plateau")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_epochs: float = 0.0  # cosine: linear warmup length
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions of training
    gamma: float = 0.1  # multistep and plateau: LR factor
    patience: int = 5  # plateau: epochs without improvement of the test loss before the LR drops
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    name: str | None = None
    runs_dir: str = "runs"

    def validate(self) -> "RunConfig":
        """Raise UserError for the first invalid setting; return self so calls can chain."""
        models.check(self.model, self.model_options)
        data.check_name(self.dataset)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
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
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise UserError(f"--device must be auto, cpu or cuda[:N], got '{self.device}'")
        return self

    def default_name(self) -> str:
        dataset = self.dataset.replace("folder:", "").rstrip("/").split("/")[-1]
        return f"{self.model}-{dataset}-{self.optimizer}-lr{self.lr}-{self.schedule}-e{self.epochs}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"unknown {what} '{value}'; choose one of: {', '.join(allowed)}")


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
