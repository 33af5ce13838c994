"""GRID-runs.tar.gz: a study folder's text files, which come back from a device call, and restore a later one.

python benchmarks/gpu/archive.py seed-runs.tar.gz results/seed   # its finished runs into the repository
"""

import json
import sys
import tarfile
from pathlib import Path

from deepernets.run.folder import DONE

# What a report and a restart need: no checkpoints, no plots
ARCHIVED = {
    "config.yaml",
    "summary.json",
    "metrics.csv",
    "confusion.csv",
    "per_class.csv",
    "log.txt",
    "lr_finder.csv",
    "study.json",
    "result.json",
}


def pack_runs(folder: Path, archive: Path) -> int:
    """The study folder's text files (ARCHIVED names, plain files) into one .tar.gz; returns how many."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.name in ARCHIVED
        and "checkpoints" not in p.relative_to(folder).parts
    )
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder)}", recursive=False)
    tmp.replace(archive)
    return len(files)


def unpack_runs(archive: Path, folder: Path) -> int:
    """Restore the finished and diverged runs (and LR-finder results) of an earlier sitting's archive."""
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and Path(m.name).name in ARCHIVED}
        studies = {Path(name).parts[0] for name in members}
        if studies - {folder.name}:  # another grid's runs would mix two plans in one study folder
            raise ValueError(f"{archive} holds the study {', '.join(sorted(studies))}, not {folder.name}")
        done = set()
        for name, member in members.items():
            parts = Path(name).parts
            if name.endswith("/summary.json") and len(parts) == 3:
                status = json.loads(tar.extractfile(member).read()).get("status")
                if status in DONE:
                    done.add(parts[1])
        for name, member in members.items():
            parts = Path(name).parts
            if ".." in parts or Path(name).is_absolute() or len(parts) < 2:
                continue
            if parts[1] in done or parts[1] == "lr_finder" or (len(parts) == 2 and parts[1] == "study.json"):
                target = folder.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return len(done)


if __name__ == "__main__":
    source, target = map(Path, sys.argv[1:3])
    print(f"{unpack_runs(source, target)} finished or diverged runs (and the plan) from {source} in {target}")
