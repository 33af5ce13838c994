"""A run folder between epochs: what a new or resumed run finds in it, and the progress saved after each epoch."""

from typing import Any

from torch import nn

from deepernets.config import WHERE_SETTINGS, RunConfig
from deepernets.data import Dataset
from deepernets.errors import UserError
from deepernets.run.folder import DONE, RunDir
from deepernets.train import artifacts, checkpoint
from deepernets.train.setup import Optimization


def open_run(run: RunDir, config: RunConfig, resume: bool) -> tuple[RunConfig, dict[str, Any] | None]:
    """Check the run directory before anything is written to it; return the config and checkpoint to resume."""
    if not run.exists():
        return config, None
    if not resume:
        raise UserError(f"run {run.path} already exists: pass --resume to continue it, or --name to start another")
    saved = run.read_config().replace(name=run.name)  # the folder names the run (older versions saved name: null)
    if config.lr == "auto":
        config = config.replace(lr=saved.lr)
    differences = [k for k, v in config.to_dict().items() if saved.to_dict()[k] != v and k not in WHERE_SETTINGS]
    if differences:
        raise UserError(
            f"--resume: settings differ from {run.config_path} in {', '.join(differences)}; "
            "resume with the saved settings (--config) or pass --name to start another run"
        )
    saved = saved.replace(**{k: getattr(config, k) for k in WHERE_SETTINGS})
    status = (run.read_summary() or {}).get("status")
    if status in DONE:
        return saved, {"status": status}
    if not run.checkpoint_path.exists():
        return saved, None
    return saved, checkpoint.load(run.checkpoint_path)


def save(
    run: RunDir,
    model: nn.Module,
    optimization: Optimization,
    history: list[dict[str, Any]],
    config: RunConfig,
    dataset: Dataset,
    info: dict[str, Any],
) -> None:
    """The checkpoint (what a resume and the commands that use a finished run need), metrics.csv and summary.json.

    `data` is what rebuilding the model and its input pipeline needs without loading the dataset.
    """
    checkpoint.save(
        run.checkpoint_path,
        {
            "model": model.state_dict(),
            "ema": optimization.ema.state_dict() if optimization.ema is not None else None,
            "optimizer": optimization.optimizer.state_dict(),
            "schedule": optimization.schedule.state_dict(),
            "scaler": optimization.scaler.state_dict() if optimization.scaler is not None else None,
            "history": history,
            "lr_finder": info["lr_finder"],
            "data": {
                "classes": dataset.classes,
                "mean": list(dataset.mean),
                "std": list(dataset.std),
                "in_channels": dataset.in_channels,
                "image_size": config.image_size,
                "stored_size": dataset.train_images.shape[-1],  # before Batches resizes to image_size
            },
        },
    )
    run.write_metrics(history)
    run.write_summary(artifacts.summarize(config, history, "running", info))


def restore(
    run: RunDir, state: dict[str, Any], model: nn.Module, optimization: Optimization, dataset: Dataset
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Load a checkpoint's state into the run's objects; return the epochs' history and the LR finder's record."""
    check_dataset(dataset, state["data"], run)
    path = run.checkpoint_path
    checkpoint.restore(path, state, model=model, optimizer=optimization.optimizer, schedule=optimization.schedule)
    if optimization.ema is not None:
        checkpoint.restore(path, state, ema=optimization.ema)
    if optimization.scaler is not None and state.get("scaler"):
        optimization.scaler.load_state_dict(state["scaler"])
    return list(state["history"]), state.get("lr_finder")


def check_dataset(dataset: Dataset, saved: dict[str, Any], run: RunDir) -> None:
    """Refuse a dataset whose classes or channels are no longer those in the run's checkpoint: a folder dataset
    that gained, lost or renamed a class would shift every label."""
    now, then = (dataset.classes, dataset.in_channels), (saved["classes"], saved["in_channels"])
    if now != then:
        raise UserError(
            f"{dataset.name} now has classes {now[0]} in {now[1]} channel(s), but {run.path} was trained on "
            f"{then[0]} in {then[1]}: restore the dataset as it was, or train a new run on it"
        )
