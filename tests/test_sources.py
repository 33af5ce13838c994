"""Where datasets come from: the decoded-array cache and the download."""

import os
import subprocess
import sys

import numpy as np

from deepernets.data import formats, sources


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
