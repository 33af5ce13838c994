"""Each epoch's scalars for TensorBoard (`--tensorboard`), written under the run folder by torch's SummaryWriter."""

from pathlib import Path
from typing import Any

# metrics.csv column -> TensorBoard tag; the step is the epoch
TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/test",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/test",
    "lr": "lr",
    "train_images_per_s": "train_images_per_s",
}


class EpochScalars:
    def __init__(self, folder: Path) -> None:
        # imported here: tensorboard is an optional extra, and RunConfig.validate says so when it is missing
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def write(self, row: dict[str, Any]) -> None:
        for column, tag in TAGS.items():
            self.writer.add_scalar(tag, row[column], row["epoch"])
        self.writer.flush()  # on disk as the epoch ends, like metrics.csv, so a killed run keeps its curves

    def close(self) -> None:
        self.writer.close()
