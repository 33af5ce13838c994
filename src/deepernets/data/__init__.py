"""Datasets: find, verify and load a split into memory as uint8 N×C×H×W with int64 labels."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepernets.config import FOLDER_PREFIX
from deepernets.data import downloads, formats, sources
from deepernets.data.batches import Batches
from deepernets.errors import UserError

__all__ = ["Batches", "Dataset", "load", "names"]


@dataclass
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 N×C×H×W
    train_labels: torch.Tensor  # int64 N
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # per channel, of the training split's pixels / 255
    std: tuple[float, ...]
    augment: str  # "crop-flip" (CIFAR-like) or "none" (MNIST-like: only resized from 28 to 32)
    location: str  # where the files were found
    test_files: list[str] | None = None  # a folder dataset's test images, as paths under its folder

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def names() -> list[str]:
    return sources.names()


def check_name(name: str) -> None:
    if name.startswith(FOLDER_PREFIX):
        if not name[len(FOLDER_PREFIX) :]:
            raise UserError("dataset 'folder:' needs a path, for example --dataset folder:~/my-images")
        return
    if name not in sources.LAYOUTS:
        raise UserError(f"unknown dataset '{name}'; choose one of: {', '.join(names())}")


def load(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    image_size: int = 32,
    channels: int | None = None,
) -> Dataset:
    """Load both splits of a registered dataset or of `folder:PATH` (see data/sources.py for where files are).

    `channels` fixes a folder dataset's (as a run recorded them, which an older version may have chosen by another
    rule); None chooses them from its images.
    """
    check_name(name)
    if name.startswith(FOLDER_PREFIX):
        return _load_folder(Path(name[len(FOLDER_PREFIX) :]).expanduser(), image_size, channels)
    found = sources.find(name, data_dir)
    if found is None:
        if not download:
            raise UserError(f"dataset {name} not found: {sources.expected_files(name, data_dir)}")
        downloads.download(name, data_dir)
        found = sources.find(name, data_dir)
        if found is None:
            raise UserError(f"dataset {name} downloaded but not found: {sources.expected_files(name, data_dir)}")
    arrays, _ = sources.load_arrays(name, found)  # the MD5s passed, or none is known (`deepernets data` says which)
    augment = "none" if arrays[0].shape[-1] == 28 else "crop-flip"
    return _dataset(name, arrays, augment, str(found.folder))


def _dataset(name: str, arrays: sources.Arrays, augment: str, location: str) -> Dataset:
    train_x, train_y, test_x, test_y, classes = arrays
    train_images = _tensor(train_x)
    mean, std = channel_stats(train_images)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=_tensor(train_y),
        test_images=_tensor(test_x),
        test_labels=_tensor(test_y),
        classes=list(classes),
        mean=mean,
        std=std,
        augment=augment,
        location=location,
    )


def _tensor(array: np.ndarray) -> torch.Tensor:
    # Parsers return views of the file's bytes, which numpy marks read-only, and torch warns about those.
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of pixel/255 of uint8 N×C×H×W images, from each channel's histogram of its 256
    values: exact sums, in a tenth of the second that summing the pixels as floats takes on MNIST."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        frequencies = torch.bincount(images[:, c].flatten(), minlength=256).double() / images[:, c].numel()
        mean = frequencies @ values
        variance = frequencies @ (values - mean) ** 2
        means.append(round(float(mean / 255.0), 6))
        stds.append(round(float(variance.sqrt() / 255.0), 6))
    return tuple(means), tuple(stds)


def _load_folder(root: Path, image_size: int, channels: int | None) -> Dataset:
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir() or not test_dir.is_dir():
        raise UserError(f"folder dataset {root} needs train/<class>/ and test/<class>/ sub-folders of images")
    classes = _class_folders(train_dir)
    if len(classes) < 2:
        raise UserError(f"folder dataset {root}/train has {len(classes)} class sub-folder(s): a classifier needs at "
                        "least two, each of images in train/<class>/")  # fmt: skip
    unknown = sorted(set(_class_folders(test_dir)) - set(classes))
    if unknown:
        raise UserError(f"{test_dir} has classes not in {train_dir}: {', '.join(unknown)}")
    suffixes = ", ".join(s.lstrip(".") for s in formats.IMAGE_SUFFIXES)
    empty = [name for name in classes if not formats.image_files(train_dir / name)]
    if empty:
        raise UserError(f"folder dataset {root}: train/{empty[0]} has no images ({suffixes}): add some or remove it")
    channels = channels or _folder_channels(train_dir, classes)
    train_x, train_y, _ = formats.read_image_folder(train_dir, classes, image_size, channels)
    test_x, test_y, test_files = formats.read_image_folder(test_dir, classes, image_size, channels)
    if len(test_x) == 0:
        raise UserError(f"folder dataset {root} has no images in test/<class>/ ({suffixes})")
    augment = "crop-flip" if image_size >= 16 else "none"
    dataset = _dataset(f"folder:{root}", (train_x, train_y, test_x, test_y, classes), augment, str(root))
    dataset.test_files = [str(file.relative_to(root)) for file in test_files]
    return dataset


def _class_folders(split_dir: Path) -> list[str]:
    """The class sub-folders, by name; hidden ones (.ipynb_checkpoints, say) are no class."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_channels(train_dir: Path, classes: list[str]) -> int:
    """1 when every training image is grayscale, else 3 (every image is converted to that); Pillow reads only
    each file's header here."""
    from PIL import Image

    for name in classes:
        for file in formats.image_files(train_dir / name):
            try:
                with Image.open(file) as img:
                    if not (img.mode in ("1", "L", "LA") or img.mode.startswith("I")):
                        return 3
            except (OSError, Image.DecompressionBombError) as e:
                raise UserError(f"cannot read image {file}: {e}; remove or replace it") from None
    return 1
