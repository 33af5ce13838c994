"""Readers for the real on-disk formats: IDX (MNIST), CIFAR binary and python versions, image folders.

Each reader returns uint8 images N×C×H×W and int64 labels as numpy arrays, and raises UserError naming the file
when the file is truncated, has a wrong magic number or holds a label out of range.
"""

import gzip
import hashlib
import io
import lzma
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from deepernets.errors import UserError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
CIFAR_IMAGE_BYTES = 3 * 32 * 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it ends in .gz or .xz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        if path.suffix == ".xz":
            with lzma.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise UserError(f"cannot read {path}: {e}; the file is damaged: delete it and fetch it again") from None


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_md5(path: Path, data: bytes, expected: str | None) -> bool | None:
    """True when the content matches the official MD5, None when none is known; a mismatch is a UserError."""
    if expected is None:
        return None
    actual = md5(data)
    if actual != expected:
        raise UserError(
            f"{path} has MD5 {actual}, but the official file has {expected}: it is corrupt or not the "
            "official release; replace it with the official file"
        )
    return True


def parse_idx(path: Path, data: bytes, num_classes: int = 10) -> np.ndarray:
    """Parse IDX images (magic 2051, returned as N×1×H×W) or labels (magic 2049, returned as int64 N)."""
    if len(data) < 8:
        raise UserError(f"{path} is truncated ({len(data)} bytes): fetch the file again")
    magic, count = np.frombuffer(data[:8], dtype=">u4")
    if magic == IDX_LABELS_MAGIC:
        labels = np.frombuffer(data, dtype=np.uint8, offset=8)
        if labels.size != count:
            raise UserError(f"{path} is truncated: header says {count} labels, file holds {labels.size}")
        return check_labels(path, labels.astype(np.int64), num_classes)
    if magic == IDX_IMAGES_MAGIC:
        if len(data) < 16:
            raise UserError(f"{path} is truncated ({len(data)} bytes): fetch the file again")
        rows, cols = np.frombuffer(data[8:16], dtype=">u4")
        pixels = np.frombuffer(data, dtype=np.uint8, offset=16)
        if pixels.size != count * rows * cols:
            raise UserError(
                f"{path} is truncated: header says {count} images of {rows}×{cols}, file holds {pixels.size} bytes"
            )
        return pixels.reshape(int(count), 1, int(rows), int(cols))
    raise UserError(
        f"{path} has magic number {magic}, not an IDX file ({IDX_IMAGES_MAGIC} for images, "
        f"{IDX_LABELS_MAGIC} for labels): replace it with the official file"
    )


def check_labels(path: Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(
            f"{path} holds label {int(labels.max())}, outside 0..{num_classes - 1}: the file is corrupt; "
            "replace it with the official file"
        )
    return labels


def parse_cifar_binary(
    path: Path, data: bytes, num_classes: int, label_bytes: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR binary version: records of `label_bytes` label bytes (the last one is used) then 3072 pixel bytes."""
    record = label_bytes + CIFAR_IMAGE_BYTES
    if len(data) == 0 or len(data) % record:
        raise UserError(
            f"{path} is {len(data)} bytes, not a whole number of {record}-byte CIFAR records: "
            "the file is truncated or not a CIFAR binary file; fetch it again"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = check_labels(path, records[:, label_bytes - 1].astype(np.int64), num_classes)
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32)
    return images, labels


class _PlainUnpickler(pickle.Unpickler):
    """Admits only the globals needed to rebuild numpy arrays: a CIFAR file cannot run code when loaded."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:  # a class or a function, as pickle's own
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)


def unpickle_plain(path: Path, data: bytes) -> dict:
    """Load a CIFAR python-version pickle with the restricted unpickler; keys come back as str."""
    try:
        obj = _PlainUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a damaged pickle can fail in many ways, all of them the file's fault
        raise UserError(f"cannot unpickle {path}: {e}; the file is corrupt: fetch it again") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} does not hold a CIFAR python-version dictionary: fetch it again")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def parse_cifar_python(
    path: Path, data: bytes, num_classes: int, label_key: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    batch = unpickle_plain(path, data)
    try:
        pixels = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except KeyError as e:
        raise UserError(f"{path} lacks the key {e}: it is not a CIFAR python-version batch; fetch it again") from None
    if pixels.ndim != 2 or pixels.shape[1] != CIFAR_IMAGE_BYTES or pixels.shape[0] != labels.shape[0]:
        raise UserError(f"{path} holds data of shape {pixels.shape} for {labels.shape[0]} labels: fetch it again")
    return pixels.reshape(-1, 3, 32, 32), check_labels(path, labels, num_classes)


def class_names(path: Path, data: bytes, count: int) -> list[str]:
    """A text file of class names, one per line, as CIFAR's binary versions have them (no MD5 is published)."""
    try:
        names = data.decode().split()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file of class names: fetch it again") from None
    if len(names) != count:
        raise UserError(f"{path} names {len(names)} classes where the labels have {count}: fetch it again")
    return names


def cifar_python_classes(path: Path, data: bytes, key: str) -> list[str]:
    meta = unpickle_plain(path, data)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def read_image(path: Path, channels: int, size: int) -> np.ndarray:
    """One image file as uint8 C×size×size (resized bilinearly), converted to 1 (grayscale) or 3 (RGB) channels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            img = ImageOps.exif_transpose(opened)  # a phone's photo upright, as viewers show it
            if img.mode == "F":  # Pillow's convert would clip them to 0 and 1; their range is the writer's choice
                raise UserError(f"cannot read image {path}: its pixels are floats, which have no fixed range; save "
                                "it with 8- or 16-bit pixels")  # fmt: skip
            if img.mode.startswith("I"):  # 16-bit grayscale: Pillow's convert clips it at 255 instead of scaling
                img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
            img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:  # ValueError: a mode
        raise UserError(f"cannot read image {path}: {e}") from None  # Pillow cannot convert
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def image_files(folder: Path) -> list[Path]:
    """The image files in a folder, by name; hidden files (macOS's ._name.jpg beside each image) are not images."""
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))


def read_image_folder(
    split_dir: Path, classes: list[str], size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Images under split_dir/<class>/, resized to size×size, as uint8 N×C×H×W; their labels and files."""
    images, labels, files = [], [], []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():  # a test split may lack some of the training classes
            continue
        for file in image_files(folder):
            try:
                images.append(read_image(file, channels, size))
            except UserError as e:  # a dataset's file can be left out, unlike an image the user names
                raise UserError(f"{e}; remove or replace it") from None
            labels.append(label)
            files.append(file)
    if not images:
        return np.zeros((0, channels, size, size), np.uint8), np.zeros(0, np.int64), []
    return np.stack(images), np.asarray(labels, dtype=np.int64), files
