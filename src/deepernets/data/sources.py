"""Where each dataset's files are looked for, how they are verified, and the cache of their decoded arrays.

A root is searched in order: `--data-dir`, `$DEEPERNETS_DATA`, `./data`. Under a root each dataset has a few
accepted layouts (ours, and the ones torchvision's downloads produce). Files may be plain, .gz or .xz.
Downloading them is downloads.py's job.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepernets.data import formats
from deepernets.errors import UserError
from deepernets.run.atomic import write_atomic

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
COMPRESSED_SUFFIXES = ("", ".xz", ".gz")
# Part of every cache key: bump it when a parser (here or in formats.py) changes what it returns, or the cache
# would keep serving arrays decoded by the old one.
CACHE_FORMAT = 1

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]


@dataclass(frozen=True)
class Layout:
    """One accepted way a dataset's files can lie under a root: candidate folders, files with MD5s, a parser."""

    folders: tuple[str, ...]
    files: dict[str, str | None]  # file name (uncompressed) -> official MD5 of the uncompressed content
    parse: Callable[[Path, Callable[[str], bytes]], Arrays]


@dataclass(frozen=True)
class Found:
    folder: Path
    layout: Layout

    def path(self, name: str) -> Path:
        return next(p for p in candidates(self.folder, name) if p.exists())


def candidates(folder: Path, name: str) -> list[Path]:
    return [folder / f"{name}{suffix}" for suffix in COMPRESSED_SUFFIXES]


def _idx(folder: Path, read: Callable[[str], bytes], classes: list[str]) -> Arrays:
    def part(name: str) -> np.ndarray:
        return formats.parse_idx(folder / name, read(name), len(classes))

    train_x, train_y = part("train-images-idx3-ubyte"), part("train-labels-idx1-ubyte")
    test_x, test_y = part("t10k-images-idx3-ubyte"), part("t10k-labels-idx1-ubyte")
    for x, y, split in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if len(x) != len(y):
            raise UserError(f"{folder}: {split} has {len(x)} images but {len(y)} labels; fetch the files again")
    return train_x, train_y, test_x, test_y, classes


def _cifar10(folder: Path, read: Callable[[str], bytes], binary: bool) -> Arrays:
    """Both CIFAR-10 versions: five training batches and a test batch, binary records or python pickles."""
    suffix, parse = (".bin", formats.parse_cifar_binary) if binary else ("", formats.parse_cifar_python)

    def part(name: str) -> tuple[np.ndarray, np.ndarray]:
        return parse(folder / f"{name}{suffix}", read(f"{name}{suffix}"), 10)

    train = [part(f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = part("test_batch")
    if binary:
        meta = folder / "batches.meta.txt"
        classes = formats.class_names(meta, meta.read_bytes(), 10) if meta.exists() else CIFAR10_CLASSES
    else:
        classes = formats.cifar_python_classes(folder / "batches.meta", read("batches.meta"), "label_names")
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y, classes)


def _cifar100_python(folder: Path, read: Callable[[str], bytes]) -> Arrays:
    train_x, train_y = formats.parse_cifar_python(folder / "train", read("train"), 100, "fine_labels")
    test_x, test_y = formats.parse_cifar_python(folder / "test", read("test"), 100, "fine_labels")
    classes = formats.cifar_python_classes(folder / "meta", read("meta"), "fine_label_names")
    return train_x, train_y, test_x, test_y, classes


def _cifar100_binary(folder: Path, read: Callable[[str], bytes]) -> Arrays:
    train_x, train_y = formats.parse_cifar_binary(folder / "train.bin", read("train.bin"), 100, label_bytes=2)
    test_x, test_y = formats.parse_cifar_binary(folder / "test.bin", read("test.bin"), 100, label_bytes=2)
    classes = formats.class_names(folder / "fine_label_names.txt", read("fine_label_names.txt"), 100)
    return train_x, train_y, test_x, test_y, classes


def _idx_layout(folders: tuple[str, ...], md5s: tuple[str, str, str, str], classes: list[str]) -> Layout:
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    return Layout(folders, dict(zip(names, md5s, strict=True)), lambda f, read: _idx(f, read, classes))


LAYOUTS: dict[str, list[Layout]] = {
    "mnist": [
        _idx_layout(
            ("mnist", "MNIST/raw"),
            (
                "6bbc9ace898e44ae57da46a324031adb",
                "a25bea736e30d166cdddb491f175f624",
                "2646ac647ad5339dbf082846283269ea",
                "27ae3e4e09519cfbb04c329615203637",
            ),
            [str(d) for d in range(10)],
        )
    ],
    "fashion-mnist": [
        _idx_layout(
            ("fashion-mnist", "FashionMNIST/raw"),
            (
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "9018921c3c673c538a1fc5bad174d6f9",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
            FASHION_CLASSES,
        )
    ],
    "cifar10": [
        Layout(
            ("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin"),
            {
                "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
                "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
                "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
                "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
                "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
                "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
            },
            lambda folder, read: _cifar10(folder, read, binary=True),
        ),
        Layout(
            ("cifar10/cifar-10-batches-py", "cifar-10-batches-py"),
            {
                "data_batch_1": "c99cafc152244af753f735de768cd75f",
                "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "test_batch": "40351d587109b95175f43aff81a1287e",
                "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
            },
            lambda folder, read: _cifar10(folder, read, binary=False),
        ),
    ],
    "cifar100": [
        Layout(
            ("cifar100/cifar-100-python", "cifar-100-python"),
            {
                "train": "16019d7e3df5f24257cddd939b257f8d",
                "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "meta": "7973b15100ade9c7d40fb424638fde48",
            },
            _cifar100_python,
        ),
        Layout(
            ("cifar100/cifar-100-binary", "cifar-100-binary"),
            {"train.bin": None, "test.bin": None, "fine_label_names.txt": None},
            _cifar100_binary,
        ),
    ],
}


def names() -> list[str]:
    return [*LAYOUTS, "folder:PATH"]


def roots(data_dir: str | Path | None) -> list[Path]:
    """The roots searched, in order: --data-dir, $DEEPERNETS_DATA, ./data."""
    found = [Path(p) for p in (data_dir, os.environ.get("DEEPERNETS_DATA"), "data") if p]
    return list(dict.fromkeys(p.expanduser() for p in found))


def find(name: str, data_dir: str | Path | None) -> Found | None:
    """The first root and layout where every file of the dataset exists; None if no root has them."""
    for root in roots(data_dir):
        for layout in LAYOUTS[name]:
            for folder in layout.folders:
                if all(any(p.exists() for p in candidates(root / folder, f)) for f in layout.files):
                    return Found(root / folder, layout)
    return None


def expected_files(name: str, data_dir: str | Path | None) -> str:
    layout = LAYOUTS[name][0]
    files = ", ".join(f"{layout.folders[0]}/{f}[.gz|.xz]" for f in layout.files)
    looked = ", ".join(str(r) for r in roots(data_dir))
    return f"expected {files} under one of: {looked}"


def cache_dir() -> Path:
    base = os.environ.get("DEEPERNETS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "deepernets"
    return Path(base).expanduser()


def _cache_path(name: str, found: Found) -> Path:
    key = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    for f in found.layout.files:
        stat = found.path(f).stat()
        key.update(f"{found.path(f).resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return cache_dir() / f"{name}-{key.hexdigest()[:16]}.npz"


def load_arrays(name: str, found: Found, verify: bool = False) -> tuple[Arrays, bool | None]:
    """The dataset's arrays and whether the MD5s passed (None: no official MD5 known).

    The decoded arrays are cached, keyed by CACHE_FORMAT and each file's path, size and modification time,
    because decompressing CIFAR-10's .xz files takes about 10 s; the cache is only written after the MD5s passed.
    `verify` reads the files themselves (`deepernets data`): a file damaged in place can keep its size and time.
    """
    cached = _cache_path(name, found)
    if cached.exists() and not verify:
        try:
            with np.load(cached, allow_pickle=False) as z:
                arrays = (
                    z["train_x"],
                    z["train_y"],
                    z["test_x"],
                    z["test_y"],
                    [str(c) for c in z["classes"]],
                )
                return arrays, bool(z["verified"][0]) if z["verified"].size else None
        except Exception:  # any damage to a cache entry means: rebuild it from the real files
            cached.unlink(missing_ok=True)
    checks: list[bool | None] = []

    def read(file: str) -> bytes:
        path = found.path(file)
        data = formats.read_bytes(path)
        checks.append(formats.check_md5(path, data, found.layout.files[file]))
        return data

    arrays = found.layout.parse(found.folder, read)
    verified = None if any(c is None for c in checks) else True
    train_x, train_y, test_x, test_y, classes = arrays

    def save(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(
                f,
                train_x=train_x,
                train_y=train_y,
                test_x=test_x,
                test_y=test_y,
                classes=np.asarray(classes),
                verified=np.asarray([] if verified is None else [verified]),
            )

    try:
        write_atomic(cached, save)
    except OSError:
        pass  # a read-only home only costs the next load its decompression time
    return arrays, verified
