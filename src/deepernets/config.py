"""Every setting a user can set, each declared once (default, type, help, checks); RunConfig reads and writes YAML.

RunConfig fully describes a training run; the CLI, YAML files and the Python API build it. The command line's flags
and the YAML checks are derived from these declarations (see settings.py). This module imports neither torch nor the
model and dataset registries: names of models and datasets are checked where those are built.
"""

import dataclasses
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deepernets import settings
from deepernets.errors import UserError
from deepernets.settings import setting

LR_PICKS = ("valley", "steep", "minimum_tenth", "minimum")  # the LR finder's suggestions, one of which `lr: auto` takes
FOLDER_PREFIX = "folder:"  # a dataset named folder:PATH is read from an image folder
LR_FINDER_MIN_STEPS = 20  # fewer points than this cannot show a fall, a minimum and a rise
SEPARATORS = tuple(filter(None, (os.sep, os.altsep)))  # none of them in a run's name, one folder (altsep: Windows)


@dataclass
class LRFinderSettings:
    """The LR range test's settings: the flags of `deepernets lr-find`, and a study grid's lr_finder_steps."""

    start_lr: float = setting(1e-7, "the range test's first LR", above=0)
    end_lr: float = setting(10.0, "its last LR; the LR grows exponentially from the first to the last", above=0)
    steps: int = setting(100, "training steps of the range test, one LR each", minimum=LR_FINDER_MIN_STEPS)


@dataclass
class RunConfig:
    """Everything that makes a training run, saved as its config.yaml."""

    model: str = setting("resnet20", "the model (`deepernets models` lists them)")
    model_options: dict[str, Any] = setting(
        {}, "the model's keyword options, e.g. {head: classic} or {shortcut: B} (flags: see ModelOptions)", flag=False
    )
    dataset: str = setting("cifar10", "the dataset (folder:PATH: the images in PATH/train/CLASS/ and PATH/test/CLASS/)")
    data_dir: str | None = setting(
        None, "where datasets are looked for first (then $DEEPERNETS_DATA, then ./data)", where=True
    )
    download: bool = setting(True, "download a dataset that is not found", where=True)
    image_size: int = setting(32, "input size in pixels; folder datasets are resized to it on load", minimum=8)
    subset: int | None = setting(None, "train on N images of a fixed shuffle of the training split", minimum=1)
    test_subset: int | None = setting(None, "test on N images of a fixed shuffle of the test split", minimum=1)
    epochs: int = setting(50, "epochs to train", minimum=1)
    batch_size: int = setting(128, "training images per step", minimum=1)
    optimizer: str = setting("sgd", "the optimizer", choices=("sgd", "adam", "adamw"))
    lr: float | str = setting(
        0.1, "learning rate (peak for one-cycle), or 'auto' for the LR finder's suggestion", above=0, choices=("auto",)
    )
    lr_pick: str = setting("valley", "which LR-finder suggestion --lr auto takes", choices=LR_PICKS)
    momentum: float = setting(0.9, "SGD's momentum", minimum=0, below=1)
    nesterov: bool = setting(False, "SGD with Nesterov momentum")
    weight_decay: float = setting(5e-4, "weight decay, on weights only (not biases and batch norm)", minimum=0)
    schedule: str = setting(
        "onecycle", "the LR schedule", choices=("constant", "onecycle", "cosine", "multistep", "plateau")
    )
    warmup_epochs: float = setting(
        0.0, "a linear rise to the LR over this many epochs (may be a fraction) before any schedule but onecycle",
        minimum=0,
    )  # fmt: skip
    milestones: list[float] = setting([0.5, 0.75], "multistep: fractions of training", above=0, below=1)
    gamma: float = setting(0.1, "multistep and plateau: LR factor", above=0)
    patience: int = setting(5, "plateau: bad epochs in a row tolerated; the LR drops after one more", minimum=0)
    label_smoothing: float = setting(0.0, "label smoothing of the training loss", minimum=0, below=1)
    ema: float = setting(
        0.0, "also evaluate a moving average of the weights with this decay, e.g. 0.999 (0: off)",
        minimum=0, below=1, metavar="DECAY",
    )  # fmt: skip
    precise_bn: int = setting(
        0, "before each evaluation, recompute batch-norm statistics for the weights as they are, over N training "
        "batches (0: keep the running averages)", minimum=0, metavar="BATCHES",
    )  # fmt: skip
    shift: int | None = setting(
        None, "shift training images by up to PIXELS of the stored image (before any resize to --image-size), zero "
        "filled (default: 4 for CIFAR-like data, which is also mirrored; 0 for digits, which never are)", minimum=0,
        metavar="PIXELS",
    )  # fmt: skip
    flip: bool | None = setting(
        None, "mirror half the training images left-right (default: yes for CIFAR-like data and image folders of "
        "16 pixels and more; no for digits, which a mirror changes: --no-flip for your own digits or text)",
    )  # fmt: skip
    low_res: int = setting(
        0, "progressive resizing: train the first --low-res-epochs epochs on images resized to PIXELS, the rest at "
        "--image-size (fewer FLOPs early, full detail at the end; 0: off)", minimum=0, metavar="PIXELS",
    )  # fmt: skip
    low_res_epochs: int = setting(0, "how many of the first epochs train at --low-res pixels", minimum=0)
    cutout: int = setting(0, "zero a SIZE×SIZE square of each training image (0: off)", minimum=0, metavar="SIZE")
    mixup: float = setting(
        0.0, "mix training images and labels, Beta(ALPHA, ALPHA) (0: off)", minimum=0, metavar="ALPHA"
    )
    cutmix: float = setting(
        0.0, "paste in a box of another training image, area ~ Beta(ALPHA, ALPHA) (0: off)", minimum=0,
        metavar="ALPHA",
    )  # fmt: skip
    tta: str = setting(
        "none", "flip: also report test accuracy over each image and its mirror", choices=("none", "flip")
    )
    seed: int = setting(  # each epoch's seeds are made from it, and must stay within what torch and numpy take
        0, "seed of the initialization and of the batches' order and augmentation", minimum=0, below=2**32
    )
    device: str = setting(
        "auto", "auto (CUDA, then CPU), cpu or cuda[:N]", pattern=(r"auto|cpu|cuda(:\d+)?", "auto, cpu or cuda[:N]"),
        where=True,
    )  # fmt: skip
    precision: str = setting(
        "auto",
        "auto: bf16 on CUDA and on CPUs with native bf16 (fp16 on older GPUs), else fp32",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    compile: bool = setting(False, "torch.compile the model", where=True)
    cuda_graphs: bool = setting(
        False, "CUDA only: compile and replay each training step as CUDA graphs (one launch instead of hundreds)",
        where=True,
    )  # fmt: skip
    tensorboard: bool = setting(
        False, "also write each epoch's scalars for TensorBoard into RUN/tensorboard/ (needs the tensorboard extra)",
        where=True,
    )  # fmt: skip
    name: str | None = setting(None, "run folder name (default: made from the settings)")
    runs_dir: str = setting("runs", "where run folders go", where=True)

    def __post_init__(self) -> None:
        # every config, from flags, a config.yaml (older ones hold the path as typed) or a study grid, holds a
        # folder dataset's absolute path: the run's config.yaml then finds the images from any directory
        self.dataset = absolute_folder(self.dataset)

    def validate(self) -> "RunConfig":
        """Raise UserError for the first invalid setting; return self so calls can chain."""
        settings.check(self)
        self._check_low_res()
        # the smallest images the run trains on, and the flag that sets them
        flag, smallest = ("--low-res", self.low_res) if self.low_res else ("--image-size", self.image_size)
        if self.model.startswith("vgg") and smallest < 32:
            raise UserError(f"{flag} {smallest} is too small for {self.model}: use at least 32")
        if self.warmup_epochs >= self.epochs:
            raise UserError(f"--warmup-epochs must be below --epochs ({self.epochs}), got {self.warmup_epochs}")
        if self.warmup_epochs and self.schedule == "onecycle":
            raise UserError("--warmup-epochs: onecycle rises to its peak by itself; leave it out or choose another "
                            "--schedule")  # fmt: skip
        if self.cutout > smallest:
            raise UserError(f"--cutout must be a square's side from 0 (off) to {flag} {smallest}, got {self.cutout}")
        if self.name is not None and (self.name in (".", "..") or any(sep in self.name for sep in SEPARATORS)):
            raise UserError(f"--name must be a folder name, without {' or '.join(SEPARATORS)} and not . or .., got "
                            f"{self.name!r}")  # fmt: skip
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise UserError("--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]' (in the "
                            "repository)")  # fmt: skip
        return self

    def _check_low_res(self) -> None:
        if bool(self.low_res) != bool(self.low_res_epochs):
            raise UserError("--low-res and --low-res-epochs go together: give both, or neither")
        if not self.low_res:
            return
        if not 8 <= self.low_res < self.image_size:
            raise UserError(f"--low-res must be from 8 pixels to below --image-size {self.image_size}, got "
                            f"{self.low_res}")  # fmt: skip
        if self.low_res_epochs >= self.epochs:
            raise UserError(f"--low-res-epochs must be below --epochs ({self.epochs}), so that the last epochs train "
                            f"at --image-size, got {self.low_res_epochs}")  # fmt: skip

    def train_size(self, epoch: int) -> int:
        """The pixels of the training images in `epoch` (from 0): --low-res for the first --low-res-epochs."""
        return self.low_res if epoch < self.low_res_epochs else self.image_size

    def default_name(self) -> str:
        dataset = dataset_slug(self.dataset)
        name = f"{self.model}-{dataset}-{self.optimizer}-lr{self.lr}-{self.schedule}-e{self.epochs}-s{self.seed}"
        # the optional training features name themselves only when on, so plain runs keep their names
        extras = {
            "ema": self.ema, "cutout": self.cutout, "mixup": self.mixup, "cutmix": self.cutmix, "pbn": self.precise_bn
        }  # fmt: skip
        name += "".join(f"-{key}{value}" for key, value in extras.items() if value)
        name += f"-res{self.low_res}x{self.low_res_epochs}" if self.low_res else ""
        name += "" if self.shift is None else f"-shift{self.shift}"  # 0 is a choice too: no shift at all
        name += "" if self.flip is None else ("-flip" if self.flip else "-noflip")
        return name + ("" if self.tta == "none" else f"-tta{self.tta}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "RunConfig":
        """Build from plain values (YAML), each converted to its setting's type; not yet validated."""
        return cls(**settings.convert(cls, values, source))

    @classmethod
    def from_sources(
        cls, files: Sequence[str | Path], flags: Mapping[str, Any], option_flags: Mapping[str, Any]
    ) -> "RunConfig":
        """Settings of YAML files, each over those before it, then the flags given over them; validated.

        A file's model options belong to its model: flags that name another model drop them, unless they set
        options of their own.
        """
        values: dict[str, Any] = {}
        for path in files:
            values.update(settings.convert(cls, load_yaml(path), str(path)))
        config = cls(**values)
        keep = flags.get("model", config.model) == config.model or option_flags
        options = {**(config.model_options if keep else {}), **option_flags}
        return config.replace(**flags, model_options=options).validate()

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class ModelOptions:
    """The models' keyword options that have flags of their own; each applies to some models only."""

    head: str | None = setting(
        None, "VGG classifier: compact 512-512 or the study's classic 4096-4096", choices=("compact", "classic")
    )
    shortcut: str | None = setting(None, "CIFAR ResNet shortcut: A zero-padding, B projection", choices=("A", "B"))
    small_stem: bool | None = setting(None, "ImageNet ResNet: 3×3 stem, no max-pool")


# May change between a run and its resume, which can move to another machine; a study's plan leaves them out.
WHERE_SETTINGS = tuple(name for name, (_, spec) in settings.specs(RunConfig).items() if spec.where)


def absolute_folder(dataset: str) -> str:
    """`folder:PATH` with PATH made absolute from the current directory, its symbolic links kept as given."""
    path = dataset.removeprefix(FOLDER_PREFIX)
    if path == dataset or not path:  # not a folder dataset, or one without a path (refused by validate)
        return dataset
    return FOLDER_PREFIX + os.path.abspath(os.path.expanduser(path))


def dataset_slug(name: str) -> str:
    """A dataset's name fit for file names: `folder:~/pets/` becomes `pets`."""
    return name.removeprefix(FOLDER_PREFIX).rstrip("/").split("/")[-1]


def shortfall(enough_images: dict[str, int], subsets: Iterable[tuple[str, int | None]]) -> str:
    """The datasets whose training subset is below what a study grid says its cells need (its `enough_images`), as
    "cifar10 9,100 of 15,000, ..." with the smallest subset of each; empty when none is."""
    short: dict[str, int] = {}
    for dataset, subset in subsets:
        if subset and subset < enough_images.get(dataset, 0):
            short[dataset] = min(subset, short.get(dataset, subset))
    return ", ".join(f"{d} {n:,} of {enough_images[d]:,}" for d, n in sorted(short.items()))


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise UserError(f"cannot read config file {path}: it is not UTF-8 text") from None
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read config file {path}: {e}".splitlines()[0]) from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold a mapping of settings")
    return values
