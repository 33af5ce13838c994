"""What a run says about itself: summary.json, the console's (and log.txt's) lines, metrics rows and plots."""

import platform
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from typing import Any

import torch

import deepernets
from deepernets import models
from deepernets.config import RunConfig
from deepernets.run import plots
from deepernets.run.folder import RunDir
from deepernets.train import distributed
from deepernets.train.device import Precision, device_description
from deepernets.train.schedules import lr_per_step
from deepernets.train.setup import Parts

# the optional views of each epoch: metrics key, label on the console, what the view is
SIDE_VIEWS = [("ema", " EMA", "moving average of the weights"), ("tta", " TTA", "image and mirror, softmax averaged")]
FINAL_SIDE_RESULTS = [("final_ema_test_acc", "EMA weights"), ("final_tta_test_acc", "with flip TTA")]


def software_versions() -> dict[str, str]:
    """The versions a result depends on; benchmarks add the machine's details."""
    return {
        "deepernets": deepernets.__version__,
        "torch": torch.__version__,
        # from the package's metadata: importing torchvision costs 1.5 s (it loads torch._dynamo), and only the
        # optional transforms need it
        "torchvision": metadata.version("torchvision"),
        "python": platform.python_version(),
    }


def log_to_run(run: RunDir, console: Callable[[str], None]) -> Callable[[str], None]:
    """A log whose every line goes to the console and to the run's log.txt."""

    def log(line: str) -> None:
        console(line)
        run.append_log(line)

    return log


def run_info(
    config: RunConfig,
    parts: Parts,
    precision: Precision,
    world: distributed.World,
    lr_finder_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the summary records about how the run trains, beside its settings and results."""
    dataset = parts.dataset
    return {
        "parameters": models.count_parameters(parts.model),
        "flops_per_image": models.flops_per_image(
            config.model, dataset.in_channels, dataset.num_classes, config.image_size, **config.model_options
        ),
        "device": device_description(world.device),
        "precision": precision.name,
        "channels_last": precision.channels_last,
        "world_size": world.size,
        "train_images": len(parts.train_batches.labels),
        "test_images": parts.test_count,
        "dataset_location": dataset.location,
        "lr_finder": lr_finder_info,
    }


def summarize(config: RunConfig, history: list[dict[str, Any]], status: str, info: dict[str, Any]) -> dict[str, Any]:
    last = history[-1] if history else None
    best = max(history, key=lambda r: r["val_acc"]) if history else None
    train_time = sum(r["epoch_time_s"] for r in history)
    return {
        "status": status,
        "name": config.name or config.default_name(),
        "model": config.model,
        "dataset": config.dataset,
        "optimizer": config.optimizer,
        "schedule": config.schedule,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_completed": len(history),
        "final_test_acc": last["val_acc"] if last and status == "finished" else None,
        "final_test_loss": last["val_loss"] if last and status == "finished" else None,
        "final_train_acc": last["train_acc"] if last and status == "finished" else None,
        "best_epoch_test_acc": {"acc": best["val_acc"], "epoch": best["epoch"]} if best else None,
        **side_results(config, last if status == "finished" else None),
        "wall_time_s": round(train_time, 2),
        "train_images_per_s": median_speed(history[config.low_res_epochs :] or history),  # at --image-size
        **info,
        "versions": software_versions(),
    }


def side_results(config: RunConfig, last: dict[str, Any] | None) -> dict[str, Any]:
    """The final accuracies of the optional views, each labelled; only for the features that are on. The headline,
    final_test_acc, stays the trained weights' single-view accuracy."""
    results: dict[str, Any] = {}
    if config.ema:
        weights = f"exponential moving average of the weights, decay {config.ema}"
        results["final_ema_test_acc"] = {"acc": last["ema_val_acc"], "weights": weights} if last else None
    if config.tta == "flip":
        views = "each image and its horizontal mirror, softmax averaged"
        results["final_tta_test_acc"] = {"acc": last["tta_val_acc"], "views": views} if last else None
    return results


def epoch_row(
    epoch: int,
    stats: dict[str, Any],
    val: tuple[float, float],
    sides: dict[str, tuple[float, float]],
    epoch_time: float,
    train_time: float,
) -> dict[str, Any]:
    """One epoch's row of metrics.csv: `val` and each of `sides` are (loss, accuracy) on the test set."""
    return {
        "epoch": epoch + 1,
        "lr": stats["lr"],
        "train_loss": round(stats["loss"], 6),
        "train_loss_smoothed": None if stats["loss_smoothed"] is None else round(stats["loss_smoothed"], 6),
        "train_acc": round(stats["acc"], 4),
        "val_loss": round(val[0], 6),
        "val_acc": round(val[1], 4),
        **{f"{key}_val_loss": round(loss, 6) for key, (loss, _) in sides.items()},
        **{f"{key}_val_acc": round(acc, 4) for key, (_, acc) in sides.items()},
        "epoch_time_s": round(epoch_time, 3),
        "train_images_per_s": round(stats["images"] / train_time, 1),
        "timestamp": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
    }


def start_line(run: RunDir, config: RunConfig, info: dict[str, Any]) -> str:
    return (
        f"run {run.path}: {config.model} on {config.dataset} "
        f"({info['train_images']} train / {info['test_images']} test images), "
        f"{info['parameters']:,} parameters, {info['device']}, {info['precision']}"
    )


def epoch_lines(row: dict[str, Any]) -> list[str]:
    minutes, seconds = divmod(int(round(row["epoch_time_s"])), 60)
    smoothed = row.get("train_loss_smoothed")
    return [
        f"Epoch: {row['epoch']:02} | Epoch Time: {minutes}m {seconds}s | Timestamp: {row['timestamp']}",
        f"\tTrain Loss: {row['train_loss']:.3f} | Train Acc: {row['train_acc']:.2f}%"
        + (f" | with label smoothing: {smoothed:.3f}" if smoothed is not None else ""),
        f"\t Val. Loss: {row['val_loss']:.3f} |  Val. Acc: {row['val_acc']:.2f}%",
    ] + [
        f"\t {label} Loss: {row[f'{key}_val_loss']:.3f} |  {label} Acc: {row[f'{key}_val_acc']:.2f}% ({what})"
        for key, label, what in SIDE_VIEWS
        if row.get(f"{key}_val_acc") is not None
    ]


def diverged_line(epoch: int, what: str) -> str:
    kept = f"the checkpoint after epoch {epoch} is kept" if epoch else "no epoch had finished, so no checkpoint is kept"
    return f"Epoch: {epoch + 1:02} | {what}: the run diverged; {kept}"


def final_line(summary: dict[str, Any], run: RunDir) -> str:
    if summary["status"] == "diverged":
        return f"diverged after {summary['epochs_completed']} good epoch(s); results in {run.path}"
    sides = [f"{name} {summary[key]['acc']:.2f}%" for key, name in FINAL_SIDE_RESULTS if summary.get(key)]
    epochs = summary["epochs_completed"]
    return (
        f"final test accuracy {summary['final_test_acc']:.2f}% after {epochs} epoch{'s' * (epochs != 1)} "
        f"({summary['train_images_per_s']} train images/s)"
        + (f"; beside it: {', '.join(sides)}" if sides else "")
        + f"; results in {run.path}"
    )


def write_plots(run: RunDir, history: list[dict[str, Any]], steps_per_epoch: int, config: RunConfig) -> None:
    if history:
        plots.training_curves(history, run.plots / "curves.png", run.name)
    lrs = lr_per_step(config, steps_per_epoch, history)
    plots.lr_schedule(lrs, steps_per_epoch, run.plots / "lr_schedule.png", f"LR schedule: {config.schedule}")


def median_speed(history: list[dict[str, Any]]) -> float | None:
    """The median epoch's training images/s."""
    return round(sorted(r["train_images_per_s"] for r in history)[len(history) // 2], 1) if history else None
