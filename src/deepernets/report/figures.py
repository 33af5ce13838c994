"""The report's own figures, drawn from what the run folders record: training curves and LR per epoch from
metrics.csv, and confusion heatmaps from confusion.csv."""

import hashlib
from pathlib import Path

from deepernets.report.collect import Run
from deepernets.run import plots
from deepernets.run.plots import plt


def training_curves(runs: list[Run], path: Path, title: str) -> None:
    """Test accuracy and training loss per epoch, one line per run."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in sorted(runs, key=lambda r: (r.config.optimizer, r.policy)):
        epochs = [int(m["epoch"]) for m in run.metrics]
        label = f"{run.config.optimizer}, {run.policy}"
        ax_acc.plot(epochs, [float(m["val_acc"]) for m in run.metrics], marker=".", label=label)
        ax_loss.plot(epochs, [float(m["train_loss"]) for m in run.metrics], marker=".", label=label)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.suptitle(title)
    plots.save_figure(fig, path)


def lr_schedules(runs: list[Run], path: Path) -> bool:
    """The LR each run logged per epoch (metrics.csv's `lr`, the LR of the epoch's last step), one line per model
    and policy of the first optimizer; False, and no file, where no run logged an epoch."""
    optimizer = next((r.config.optimizer for r in runs), None)
    chosen = [r for r in runs if r.config.optimizer == optimizer and r.metrics]
    if not chosen:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.4))
    seen = set()
    for run in sorted(chosen, key=lambda r: (r.policy, r.config.model)):
        key = (run.policy, run.config.model)
        if key in seen:
            continue
        seen.add(key)
        epochs = [int(m["epoch"]) for m in run.metrics]
        ax.plot(epochs, [float(m["lr"]) for m in run.metrics], marker=".", label=f"{run.config.model}, {run.policy}")
    ax.set(xlabel="epoch", ylabel="learning rate", yscale="log", title=f"LR schedules ({optimizer})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    plots.save_figure(fig, path)
    return True


def confusion(run: Run, matrix: list[list[int]], classes: list[str], folder: Path, title: str) -> Path:
    """The run's confusion heatmap in `folder`, under a name no other run's can take."""
    # run names repeat across the study folders of one grid; the folder's path tells them apart
    digest = hashlib.sha256(str(run.dir.path.resolve()).encode()).hexdigest()[:8]
    path = folder / f"confusion-{run.dir.path.parent.name}-{run.dir.name}-{digest}.png"
    plots.confusion_heatmap(matrix, classes, path, title)
    return path
