"""Figures as PNG files: training curves, confusion heatmaps, LR-finder curves and LR schedules."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from deepernets.atomic import write_atomic  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def training_curves(rows: list[dict], path: Path, title: str = "") -> None:
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        ax_loss.plot(epochs, [float(r[key]) for r in rows], marker=".", label=label)
    for key, label in (("train_acc", "train"), ("val_acc", "val")):
        ax_acc.plot(epochs, [float(r[key]) for r in rows], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def confusion_heatmap(confusion: list[list[int]], classes: list[str], path: Path, title: str = "") -> None:
    k = len(classes)
    size = max(4.0, min(14.0, 0.45 * k + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 20:
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        peak = max(max(row) for row in confusion) or 1
        for i in range(k):
            for j in range(k):
                color = "white" if confusion[i][j] > peak / 2 else "black"
                ax.text(j, i, str(confusion[i][j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    save_figure(fig, path)


def lr_finder_curve(lrs: list[float], losses: list[float], suggestion: float, path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss", title=title or "LR range test")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def lr_schedule(lrs: list[float], steps_per_epoch: int, path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot([i / max(1, steps_per_epoch) for i in range(len(lrs))], lrs)
    ax.set(xlabel="epoch", ylabel="learning rate", title=title or "LR schedule")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
