"""Test accuracy through one short run, and at its end with batch-norm statistics recomputed (`--precise-bn`):
the measurements behind the main job's `precise_bn: 20` (README, The main job). fp32 under the kernel limits given.

    python benchmarks/precise_bn.py "model=resnet20 dataset=mnist image_size=28 subset=6300 optimizer=sgd lr=0.02"

Each argument is one run: run settings as key=value, on top of the main job's (one epoch, batch 32, a constant LR,
Nesterov momentum 0.9, label smoothing 0.1, no shifts, 2,000 test images). `every=N` tests every N steps (default 20).
"""

import sys

import yaml

from deepernets.config import RunConfig
from deepernets.train.batch_norm import recompute_statistics
from deepernets.train.evaluate import evaluate
from deepernets.train.optimizers import set_lr
from deepernets.train.setup import build_local_parts, build_optimization
from deepernets.train.step import train_step

MAIN_JOB = dict(epochs=1, batch_size=32, schedule="constant", momentum=0.9, nesterov=True, weight_decay=5e-4,
                label_smoothing=0.1, shift=0, test_subset=2000)  # fmt: skip
RECOMPUTED_OVER = (10, 20, 40, 80)  # training batches


def curve(settings: dict, every: int) -> tuple[list[float], list[float]]:
    """Test accuracy every `every` steps and after the last; then after recomputing over each RECOMPUTED_OVER."""
    config = RunConfig.from_dict({**MAIN_JOB, **settings}).validate()
    parts, precision = build_local_parts(config)
    opt = build_optimization(parts.model, config, precision, len(parts.train_batches))
    during = []
    for step, (x, y) in enumerate(parts.train_batches, 1):
        parts.model.train()
        set_lr(opt.optimizer, opt.schedule.lr(step - 1))
        train_step(parts.model, opt.optimizer, x, y, precision, None, config.label_smoothing)
        if step % every == 0 or step == len(parts.train_batches):
            during.append(round(evaluate(parts.model, parts.test_batches, precision).accuracy, 1))
    recomputed = []
    for count in RECOMPUTED_OVER:
        recompute_statistics(parts.model, parts.train_batches, count, precision)
        recomputed.append(round(evaluate(parts.model, parts.test_batches, precision).accuracy, 1))
    return during, recomputed


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        settings = {k: yaml.safe_load(v) for k, v in (pair.split("=", 1) for pair in spec.split())}
        every = settings.pop("every", 20)
        during, recomputed = curve(settings, every)
        print(f"{spec}\n  every {every} steps: {during}\n  recomputed over {RECOMPUTED_OVER} batches: {recomputed}")
