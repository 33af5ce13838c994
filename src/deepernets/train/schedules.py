"""Learning-rate schedules as plain functions of the step, so their only state is a few numbers.

The LR is set on the optimizer before every step. Reduce-on-plateau is the one schedule driven by the
end-of-epoch test loss; its state is saved in the checkpoint.
"""

import math
from typing import Any

from deepernets.config import RunConfig

ONECYCLE_WARMUP = 0.3  # fraction of the steps spent rising, as torch's OneCycleLR
ONECYCLE_START_DIV = 25.0  # start at peak / 25
ONECYCLE_END_DIV = 1e4  # end at start / 1e4
PLATEAU_THRESHOLD = 1e-4  # relative improvement of the test loss that counts
PLATEAU_MIN_DROP = 1e-8  # a drop smaller than this is skipped, as torch's ReduceLROnPlateau `eps`


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


class Schedule:
    def __init__(self, config: RunConfig, peak_lr: float, steps_per_epoch: int) -> None:
        self.kind = config.schedule
        self.peak = peak_lr
        self.steps_per_epoch = steps_per_epoch
        self.total = max(1, config.epochs * steps_per_epoch)
        self.warmup = round(config.warmup_epochs * steps_per_epoch)
        # On steps, not epochs, as the paper's drops at 32k and 48k iterations: rounded to whole epochs, a 1-epoch
        # run would drop at step 0 and a 3-epoch run would drop both times at epoch 2.
        self.milestones = sorted(round(m * self.total) for m in config.milestones)
        self.gamma = config.gamma
        self.patience = config.patience
        self.plateau_factor = 1.0
        self.plateau_best = math.inf
        self.plateau_bad_epochs = 0

    def lr(self, step: int) -> float:
        """The LR for the given 0-based global step."""
        if self.kind == "onecycle":  # it has a rise of its own (the config refuses --warmup-epochs with it)
            start = self.peak / ONECYCLE_START_DIV
            rise = max(1, round(ONECYCLE_WARMUP * self.total))
            if step < rise:
                return _cosine(start, self.peak, step / rise)
            return _cosine(self.peak, start / ONECYCLE_END_DIV, (step - rise) / max(1, self.total - 1 - rise))
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.peak
        if self.kind == "cosine":
            return _cosine(self.peak, 0.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind == "multistep":
            return self.peak * self.gamma ** sum(step >= m for m in self.milestones)
        if self.kind == "plateau":
            return self.peak * self.plateau_factor
        raise ValueError(f"unknown schedule {self.kind}")

    def end_epoch(self, test_loss: float) -> None:
        if self.kind != "plateau":
            return
        if test_loss < self.plateau_best * (1 - PLATEAU_THRESHOLD):
            self.plateau_best, self.plateau_bad_epochs = test_loss, 0
            return
        # As torch's ReduceLROnPlateau (mode min, rel threshold, cooldown 0): the LR drops at the (patience + 1)-th
        # epoch in a row without a better loss, and the count starts again.
        self.plateau_bad_epochs += 1
        if self.plateau_bad_epochs > self.patience:
            lr = self.peak * self.plateau_factor
            if lr - lr * self.gamma > PLATEAU_MIN_DROP:
                self.plateau_factor *= self.gamma
            self.plateau_bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {
            "plateau_factor": self.plateau_factor,
            "plateau_best": self.plateau_best,
            "plateau_bad_epochs": self.plateau_bad_epochs,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_factor = float(state["plateau_factor"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad_epochs = int(state["plateau_bad_epochs"])


def lr_per_step(config: RunConfig, steps_per_epoch: int, history: list[dict[str, Any]]) -> list[float]:
    """The LR of every step of a run: computed from its schedule, or for plateau, after its warm-up, the per-epoch
    LR it logged (its drops follow the test loss)."""
    schedule = Schedule(config, float(config.lr), steps_per_epoch)
    if config.schedule == "plateau":
        logged = [float(row["lr"]) for row in history for _ in range(steps_per_epoch)]
        return [schedule.lr(step) if step < schedule.warmup else lr for step, lr in enumerate(logged)]
    return [schedule.lr(step) for step in range(config.epochs * steps_per_epoch)]
