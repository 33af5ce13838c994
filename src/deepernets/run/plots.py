"""Figures as PNG files: training curves, confusion heatmaps, LR-finder curves, LR schedules and image grids."""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from deepernets.run.atomic import write_atomic  # noqa: E402


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


def lr_finder_curve(
    lrs: list[float],
    raw_losses: list[float],
    smoothed: list[float],
    threshold: float,
    picked: tuple[float, str],
    path: Path,
    title: str = "",
) -> None:
    """The range test's losses, the level the loss had to fall below, and the LR picked (with its rule)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(lrs, raw_losses, color="0.75", linewidth=0.8, label="loss per batch")
    ax.plot(lrs, smoothed, label="smoothed")
    if threshold == threshold:  # not NaN
        ax.axhline(threshold, color="0.4", linestyle=":", label="clearly fallen below")
    lr, rule = picked
    ax.axvline(lr, color="red", linestyle="--", label=f"picked {lr:.2g} ({rule})")
    finite = [v for v in raw_losses if v == v]
    if finite:  # keep the fall readable: the explosion at the end would squash it
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 3 * finite[0]) * 1.1)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title or "LR range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def lr_schedule(lrs: list[float], steps_per_epoch: int, path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot([i / max(1, steps_per_epoch) for i in range(len(lrs))], lrs)
    ax.set(xlabel="epoch", ylabel="learning rate", title=title or "LR schedule")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def image_grid(images: np.ndarray, captions: list[str], path: Path, title: str = "", columns: int = 4) -> None:
    """uint8 N×C×H×W images (C is 1 or 3) in rows of `columns`, each with its caption."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
