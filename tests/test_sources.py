"""Where datasets come from: the decoded-array cache and the download."""

import dataclasses
import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from deepernets import data
from deepernets.data import downloads, formats, sources
from deepernets.errors import UserError

unpickle = formats.unpickle_plain


def write_cifar100_binary(root, train_labels: list[int], test_labels: list[int]) -> None:
    """A tiny CIFAR-100 binary version (no official MD5 applies to it): 2 label bytes, then 3072 pixels a record."""
    folder = root / "cifar100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, labels in (("train.bin", train_labels), ("test.bin", test_labels)):
        records = rng.integers(0, 256, (len(labels), 2 + 3072), dtype=np.uint8)
        records[:, 1] = labels
        (folder / name).write_bytes(records.tobytes())
    (folder / "fine_label_names.txt").write_text("\n".join(f"class{i}" for i in range(100)))


def test_cache_entry_of_another_format_version_is_not_served(tmp_path, monkeypatch):
    """A parser fix bumps CACHE_FORMAT; arrays a parser of an earlier format decoded must then be decoded again."""
    monkeypatch.setenv("DEEPERNETS_CACHE", str(tmp_path / "cache"))
    write_cifar100_binary(tmp_path / "data", [3, 7, 42], [99])
    found = sources.find("cifar100", tmp_path / "data")
    current = sources.CACHE_FORMAT

    # A parser with a bug (every image black) writes the cache under an earlier format version.
    parse = formats.parse_cifar_binary

    def buggy_parse(*args, **kwargs):
        images, labels = parse(*args, **kwargs)
        return np.zeros_like(images), labels

    monkeypatch.setattr(sources, "CACHE_FORMAT", current - 1)
    monkeypatch.setattr(formats, "parse_cifar_binary", buggy_parse)
    (stale, *_), _ = sources.load_arrays("cifar100", found)
    assert stale.max() == 0
    monkeypatch.setattr(formats, "parse_cifar_binary", parse)
    (served, *_), _ = sources.load_arrays("cifar100", found)
    assert served.max() == 0  # same version: the cached (stale) arrays are served, as they should be

    monkeypatch.setattr(sources, "CACHE_FORMAT", current)
    (fresh, train_y, *_), _ = sources.load_arrays("cifar100", found)
    assert fresh.max() > 0 and train_y.tolist() == [3, 7, 42]


def test_class_names_that_do_not_fit_the_labels_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPERNETS_CACHE", str(tmp_path / "cache"))
    write_cifar100_binary(tmp_path / "data", [3, 7, 42], [99])
    names = tmp_path / "data/cifar100/cifar-100-binary/fine_label_names.txt"
    names.write_text("\n".join(f"coarse{i}" for i in range(20)))  # the coarse list under the fine list's name
    with pytest.raises(UserError, match="fine_label_names.txt names 20 classes where the labels have 100: fetch it"):
        data.load("cifar100", tmp_path / "data", download=False)
    names.write_bytes(b"\xff\xfe not text")
    with pytest.raises(UserError, match="fine_label_names.txt is not a text file of class names: fetch it again"):
        data.load("cifar100", tmp_path / "data", download=False)


def test_verifying_reads_the_files_a_cache_entry_was_made_from(tmp_path, monkeypatch):
    """`deepernets data` checks the files themselves: one damaged in place can keep its size and time."""
    monkeypatch.setenv("DEEPERNETS_CACHE", str(tmp_path / "cache"))
    write_cifar100_binary(tmp_path / "data", [3, 7, 42], [99])
    found = sources.find("cifar100", tmp_path / "data")
    sources.load_arrays("cifar100", found)
    train = tmp_path / "data/cifar100/cifar-100-binary/train.bin"
    stat, damaged = train.stat(), bytearray(train.read_bytes())
    damaged[1] = 150  # a label no class has
    train.write_bytes(bytes(damaged))
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sources.load_arrays("cifar100", found)[0][1].tolist() == [3, 7, 42]  # served from the cache
    with pytest.raises(UserError, match="150"):
        sources.load_arrays("cifar100", found, verify=True)


def test_a_fresh_load_warns_nothing(tmp_path):
    """Parsers return read-only views of the files' bytes; turned into tensors as they are, torch warned on stderr
    (once per process, hence a process of its own)."""
    write_cifar100_binary(tmp_path / "data", [3, 7, 42], [99])
    code = f"from deepernets import data; data.load('cifar100', {str(tmp_path / 'data')!r}, download=False)"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env={**os.environ, "DEEPERNETS_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def cifar10_python_files(labels: list[int]) -> tuple[dict[str, bytes], np.ndarray]:
    """The files of cifar-10-python.tar.gz, each holding `labels`, pickled as the real ones are (protocol 2, bytes
    keys, a uint8 N×3072 array and a list of labels)."""
    pixels = np.random.default_rng(2).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    batch = pickle.dumps({b"batch_label": b"batch", b"labels": labels, b"data": pixels}, protocol=2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    files = dict.fromkeys(names, batch)
    files["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in sources.CIFAR10_CLASSES]}, protocol=2)
    return files, pixels


def fake_download(name: str, calls: list) -> tuple:
    """A stand-in for torchvision's download_and_extract_archive that writes the real formats, tiny, and unpacks
    them with torchvision's own extract_archive; returns it and the pixels every file of the dataset holds."""
    from torchvision.datasets.utils import extract_archive

    files, pixels = cifar10_python_files([1, 9, 4])
    idx_pixels = np.random.default_rng(3).integers(0, 256, (3, 28, 28), dtype=np.uint8)

    def download(url, download_root, extract_root=None, filename=None, md5=None, remove_finished=False):
        calls.append((url, Path(download_root), filename, md5))
        archive = Path(download_root) / filename
        archive.parent.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".tar.gz"):
            with tarfile.open(archive, "w:gz") as tar:
                for file, content in files.items():
                    info = tarfile.TarInfo(f"cifar-10-batches-py/{file}")
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        elif "images" in filename:
            archive.write_bytes(gzip.compress(struct.pack(">IIII", 2051, 3, 28, 28) + idx_pixels.tobytes()))
        else:
            archive.write_bytes(gzip.compress(struct.pack(">II", 2049, 3) + bytes([1, 9, 4])))
        extract_archive(str(archive), extract_root or download_root, remove_finished)

    return download, (idx_pixels[:, None] if name == "mnist" else pixels.reshape(-1, 3, 32, 32))


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_download_fetches_the_official_archives_and_reads_them_with_our_parsers(tmp_path, monkeypatch, name):
    import torchvision.datasets
    import torchvision.datasets.utils

    def no_dataset_class(*args, **kwargs):
        raise AssertionError("a torchvision dataset class was used: it unpickles CIFAR with full pickle")

    for cls in ("MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"):
        monkeypatch.setattr(torchvision.datasets, cls, no_dataset_class)
    calls: list = []
    download, pixels = fake_download(name, calls)
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", download)
    # The tiny files are not the official ones: drop their MD5s (the archives' MD5s are checked in the call).
    layouts = [dataclasses.replace(layout, files=dict.fromkeys(layout.files)) for layout in sources.LAYOUTS[name]]
    monkeypatch.setitem(sources.LAYOUTS, name, layouts)
    unpickled = []
    monkeypatch.setattr(
        formats, "unpickle_plain", lambda path, data: unpickled.append(path.name) or unpickle(path, data)
    )
    monkeypatch.setenv("DEEPERNETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEEPERNETS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)

    dataset = data.load(name, tmp_path / "root")

    if name == "cifar10":
        folder = tmp_path / "root" / "cifar10"
        assert calls == [
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", folder, "cifar-10-python.tar.gz",
             "c58f30108f718f92721af3b95e74349a"),
        ]  # fmt: skip
        assert dataset.location == str(folder / "cifar-10-batches-py")
        assert sorted(unpickled) == sorted([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])
        assert dataset.classes == sources.CIFAR10_CLASSES
    else:
        folder = tmp_path / "root" / "mnist"
        mirror = "https://ossci-datasets.s3.amazonaws.com/mnist/"
        official = [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ]
        assert calls == [(mirror + file, folder, file, md5) for file, md5 in official]
        assert dataset.location == str(folder)
    assert np.array_equal(dataset.train_images.numpy(), np.concatenate([pixels] * (5 if name == "cifar10" else 1)))
    assert np.array_equal(dataset.test_images.numpy(), pixels)
    assert dataset.test_labels.tolist() == [1, 9, 4]
    assert not any(p.name.endswith(".gz") for p in folder.iterdir())  # the archives are removed once unpacked


def test_download_table_matches_torchvision(monkeypatch):
    """Our URLs and MD5s are the ones torchvision's dataset classes download (read here only as the reference)."""
    from torchvision import datasets

    for name, cls in (("mnist", datasets.MNIST), ("fashion-mnist", datasets.FashionMNIST)):
        assert downloads.DOWNLOADS[name].mirrors == tuple(cls.mirrors)
        assert downloads.DOWNLOADS[name].files == tuple(cls.resources)
    for name, cls in (("cifar10", datasets.CIFAR10), ("cifar100", datasets.CIFAR100)):
        ((file, md5),) = downloads.DOWNLOADS[name].files
        assert [downloads.DOWNLOADS[name].mirrors[0] + file, md5] == [cls.url, cls.tgz_md5]


def test_download_with_the_network_closed_is_one_line_listing_files_and_folders(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    def closed(url, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", closed)
    monkeypatch.setenv("DEEPERNETS_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        data.load("cifar10", tmp_path / "root")
    message = str(error.value)
    assert "\n" not in message and "could not be downloaded" in message and "Name or service not known" in message
    assert "cifar-10-python.tar.gz" in message  # the URL tried
    assert "cifar10/cifar-10-batches-bin/data_batch_1.bin" in message  # the files expected
    assert all(str(root) in message for root in (tmp_path / "root", tmp_path / "env", "data"))  # the folders looked in


def test_channel_statistics_are_those_of_the_pixels():
    import torch

    images = np.random.default_rng(0).integers(0, 256, (50, 3, 9, 7), dtype=np.uint8)
    images[:, 2] //= 4  # channels that differ
    mean, std = data.channel_stats(torch.from_numpy(images))
    pixels = images.astype(np.float64) / 255
    assert mean == pytest.approx([pixels[:, c].mean() for c in range(3)], abs=1e-6)
    assert std == pytest.approx([pixels[:, c].std() for c in range(3)], abs=1e-6)
    assert mean[2] < mean[0] / 2
