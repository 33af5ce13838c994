"""A run directory holds everything about one run; every file in it is written atomically.

config.yaml   the complete RunConfig (`deepernets train --config` reproduces the run)
metrics.csv   one row per epoch
summary.json  status, final and (labelled) best accuracy, throughput, model size, device, versions
checkpoints/last.pt
confusion.csv, per_class.csv, confidently_wrong.csv, plots/*.png, log.txt
tensorboard/  with --tensorboard: each epoch's scalars
"""

import csv
import io
import json
from pathlib import Path
from typing import Any

from deepernets.config import RunConfig, load_yaml
from deepernets.run import atomic

DONE = ("finished", "diverged")  # end states: a resume leaves such a run as it is, and a study skips it

METRIC_COLUMNS = [
    "epoch",
    "lr",
    "train_loss",  # plain cross-entropy, like val_loss
    "train_loss_smoothed",  # the loss trained on, when label smoothing is on (empty otherwise)
    "train_acc",
    "val_loss",
    "val_acc",
    "ema_val_loss",  # the moving average of the weights (--ema), when on (empty otherwise)
    "ema_val_acc",
    "tta_val_loss",  # flip test-time augmentation (--tta flip), when on (empty otherwise)
    "tta_val_acc",
    "epoch_time_s",
    "train_images_per_s",
    "timestamp",
]


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    metrics_path = property(lambda self: self.path / "metrics.csv")
    summary_path = property(lambda self: self.path / "summary.json")
    checkpoint_path = property(lambda self: self.path / "checkpoints" / "last.pt")
    log_path = property(lambda self: self.path / "log.txt")
    lock_path = property(lambda self: self.path / ".lock")
    plots = property(lambda self: self.path / "plots")

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.config_path.exists()

    def read_config(self) -> RunConfig:
        return RunConfig.from_dict(load_yaml(self.config_path), str(self.config_path))

    def write_config(self, config: RunConfig) -> None:
        atomic.write_yaml(self.config_path, config.to_dict())

    def read_summary(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> str | None:
        """The status in its summary ("running", "finished", "diverged"), or None before it has one."""
        return (self.read_summary() or {}).get("status")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic.write_json(self.summary_path, summary)

    def read_metrics(self) -> list[dict[str, str]]:
        try:
            with self.metrics_path.open() as f:
                return list(csv.DictReader(f))
        except OSError:
            return []

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic.write_text(self.metrics_path, to_csv(rows, METRIC_COLUMNS))

    def append_log(self, line: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
