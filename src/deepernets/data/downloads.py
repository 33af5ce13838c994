"""Fetching a dataset's official archives into the first root (see sources.roots), where sources.find finds them.

A download fetches the official archives only; our own parsers read them, as they read files found on disk.
"""

import socket
from dataclasses import dataclass
from pathlib import Path

from deepernets.data.sources import expected_files, roots
from deepernets.errors import UserError


@dataclass(frozen=True)
class Download:
    """A dataset's official files: the folder under the root they unpack into, mirrors tried in order, and each
    file's name with the MD5 of the file as downloaded (the URLs and MD5s torchvision's dataset classes use)."""

    folder: str
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]


DOWNLOADS: dict[str, Download] = {
    "mnist": Download(
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": Download(
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "cifar10": Download(
        "cifar10",
        ("https://www.cs.toronto.edu/~kriz/",),
        (("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
    ),
    "cifar100": Download(
        "cifar100",
        ("https://www.cs.toronto.edu/~kriz/",),
        (("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
    ),
}


def download(name: str, data_dir: str | Path | None) -> None:
    """Fetch the dataset's official archives into the first root and unpack them; UserError when none can be had.

    Only the archives come from torchvision (its download checks their MD5s); torchvision's dataset classes are
    not used, because they unpickle CIFAR's python version with full pickle. Our parsers read what is unpacked.
    """
    from torchvision.datasets.utils import download_and_extract_archive

    source = DOWNLOADS[name]
    folder = roots(data_dir)[0] / source.folder
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        for file, md5 in source.files:
            errors = []
            for mirror in source.mirrors:
                try:
                    download_and_extract_archive(mirror + file, folder, filename=file, md5=md5, remove_finished=True)
                    break
                except Exception as e:  # network errors come in many types; any of them means "not from here"
                    errors.append(f"{mirror}{file}: {type(e).__name__}: {e}")
            else:
                raise UserError(
                    f"dataset {name} was not found and could not be downloaded ({'; '.join(errors)}); "
                    f"{expected_files(name, data_dir)}; pass --data-dir or set DEEPERNETS_DATA"
                )
    finally:
        socket.setdefaulttimeout(previous)
