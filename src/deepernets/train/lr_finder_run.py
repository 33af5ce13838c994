"""The LR range test as a run or `deepernets lr-find` runs it: the test, its files, its log lines and its record."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from deepernets.config import LR_PICKS, LRFinderSettings, RunConfig
from deepernets.data import Batches
from deepernets.run import plots
from deepernets.run.atomic import write_text
from deepernets.run.folder import to_csv
from deepernets.train.device import Precision
from deepernets.train.lr_finder import lr_range_test
from deepernets.train.optimizers import build_optimizer


def find_lr(
    model: nn.Module,
    config: RunConfig,
    batches: Batches,
    precision: Precision,
    out: Path | None,
    log: Callable[[str], None],
    **test_options: Any,
) -> dict[str, Any]:
    """Run the LR range test, write its history CSV and plot into `out` (if given), and return what it chose.

    It never fails for want of a usable curve: it then falls back (see lr_finder.LRFinderResult.choose) and warns,
    so every rank of a torchrun job comes back with an answer.
    """
    probe = build_optimizer(model, config, LRFinderSettings.start_lr)
    result = lr_range_test(model, probe, batches, precision, label_smoothing=config.label_smoothing, **test_options)
    choice = result.choose(config.lr_pick, config.optimizer)
    if out is not None:
        write_text(out / "lr_finder.csv", to_csv(result.rows(), ["step", "lr", "loss", "smoothed_loss"]))
        title = f"LR range test: {config.model} on {config.dataset} ({config.optimizer})"
        label = choice.picked_by + (", fallback" if choice.fallback else "")
        plots.lr_finder_curve(
            result.lrs, result.raw_losses, result.losses, result.threshold, (choice.lr, label),
            out / "plots" / "lr_finder.png", title,
        )  # fmt: skip
    log(
        f"LR finder: valley {result.valley:.3g}, steep {result.steep:.3g}, minimum/10 {result.minimum_tenth:.3g}, "
        f"minimum {result.minimum:.3g}; using {choice.lr:.3g} ({choice.picked_by})"
    )
    if choice.warning:
        log(f"warning: {choice.warning}")
    return {
        "suggested_lr": choice.lr,
        "method": config.lr_pick,
        "picked_by": choice.picked_by,
        "fallback": choice.fallback,
        "warning": choice.warning,
        **{method: getattr(result, method) for method in LR_PICKS},
        "points": len(result.lrs),
    }
