"""`lr: auto` in a study: one LR range test per dataset, model, optimizer and the other settings it depends on,
shared by every cell that has them and recorded under the study folder's lr_finder/."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepernets.config import LRFinderSettings, RunConfig, dataset_slug
from deepernets.run import atomic, locks

# Settings that change what the LR range test sees; cells that share them share one test.
LR_FINDER_SETTINGS = ("dataset", "model", "model_options", "optimizer", "batch_size", "subset", "image_size",
                      "momentum", "nesterov", "weight_decay", "label_smoothing", "precision", "lr_pick")  # fmt: skip
# The range test trains on augmented batches too; these count only when on, so earlier studies keep their keys.
LR_FINDER_AUGMENTATION = ("cutout", "mixup", "cutmix")
# These count whenever set: None is the dataset's default, and 0 or False a choice too (no shift, no mirror where
# the default shifts and mirrors CIFAR).
LR_FINDER_DATASET_DEFAULTS = ("shift", "flip")
RANGE_TESTS, RESULT = "lr_finder", "result.json"  # a study's range tests: STUDY/lr_finder/KEY/result.json


def lr_finder_key(config: RunConfig) -> str:
    """dataset-model-optimizer, plus a short hash of every other setting the range test depends on."""
    settings = {k: getattr(config, k) for k in LR_FINDER_SETTINGS}
    settings.update({k: getattr(config, k) for k in LR_FINDER_AUGMENTATION if getattr(config, k)})
    settings.update({k: getattr(config, k) for k in LR_FINDER_DATASET_DEFAULTS if getattr(config, k) is not None})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{dataset_slug(config.dataset)}-{config.model}-{config.optimizer}-{digest}"


def finished_range_tests(study_dir: Path) -> set[str]:
    """The keys (lr_finder_key) whose range test the study folder holds already."""
    return {path.parent.name for path in (study_dir / RANGE_TESTS).glob(f"*/{RESULT}")}


def resolve_lr(
    config: RunConfig, study_dir: Path, steps: int, log: Callable[[str], None]
) -> tuple[RunConfig, dict[str, Any] | None]:
    """Replace `lr: auto` with the LR the finder chose for this dataset, model and optimizer; also return its record.

    The test runs once per key (seed 0), under a lock so that parallel workers wait for one result.
    """
    if config.lr != "auto":
        return config, None
    from deepernets.train.lr_finder_run import find_lr  # training's imports take seconds: only when needed
    from deepernets.train.setup import build_local_parts

    out = study_dir / RANGE_TESTS / lr_finder_key(config)
    result_path = out / RESULT
    with locks.lock(out / ".lock"):
        if not result_path.exists():
            probe = config.replace(seed=0, lr=LRFinderSettings.start_lr)
            parts, precision = build_local_parts(probe)
            log(f"LR range test for {lr_finder_key(config)} ({steps} steps)")
            result = find_lr(parts.model, probe, parts.train_batches, precision, out, log, steps=steps)
            atomic.write_json(result_path, {**result, "dataset": config.dataset, "model": config.model,
                                            "optimizer": config.optimizer})  # fmt: skip
    result = atomic.read_json(result_path)
    return config.replace(lr=result["suggested_lr"]), result
