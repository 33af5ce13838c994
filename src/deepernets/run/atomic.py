"""Atomic file writes: a reader sees the old file or the new one, never a half-written one."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deepernets.errors import UserError

TEMPORARY_SUFFIX = ".tmp"  # of the hidden file a write fills before its rename (remove_leftovers finds them)

# mkstemp makes its file readable by its owner only, and the rename keeps that: give it the mode a plain open()
# would, so that a report or an exported model can be read by others where the umask allows.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` to fill a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)  # the new content is on disk before the rename makes it the file
        os.replace(tmp, path)
        _fsync(path.parent)  # and the rename itself survives a crash
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files that a process killed mid-write left under `folder` (their files are intact: the
    rename never happened). Only for a folder no other process writes to (a run, under its lock)."""
    for leftover in folder.rglob(f".*{TEMPORARY_SUFFIX}") if folder.is_dir() else []:
        leftover.unlink(missing_ok=True)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: str | Path) -> Any:
    """A JSON file this tool wrote; a one-line error naming it when it was cut short or edited into invalid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}): restore it, or delete it to start that part again") from None
