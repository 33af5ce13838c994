import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepernets.data import Batches
from deepernets.train.device import Precision
from deepernets.train.lr_finder import (
    FALLBACK_LR,
    LRFinderResult,
    longest_descent,
    lr_range_test,
    moving_average,
    smoothing_window,
    suggest,
)


def curve(losses: list[float], lrs: list[float] | None = None) -> LRFinderResult:
    result = LRFinderResult(lrs=lrs or list(np.logspace(-7, 1, len(losses))), raw_losses=losses)
    suggest(result)
    return result


def test_suggestions_come_from_the_region_where_the_loss_has_fallen():
    lrs = list(np.logspace(-7, 1, 100))
    # flat, then falling between 1e-4 and 1e-1, then blowing up
    losses = [
        2.3 if lr < 1e-4 else (2.3 - 0.5 * math.log10(lr / 1e-4) if lr < 1e-1 else 0.8 + 10 * (lr - 0.1)) for lr in lrs
    ]
    result = curve(losses, lrs)
    assert result.problem is None
    assert 1e-4 < result.valley < 1e-1
    assert 1e-4 < result.steep < 1e-1
    assert 3e-2 < result.minimum < 2e-1
    assert result.minimum_tenth == pytest.approx(result.minimum / 10)
    choice = result.choose("minimum", "sgd")
    assert (choice.lr, choice.picked_by, choice.fallback, choice.warning) == (result.minimum, "minimum", False, None)


def test_a_flat_then_exploding_curve_gets_the_fallback_and_a_warning():
    # vgg11_bn on MNIST as a user saw it: 2.30-2.33 up to LR 0.12, then an explosion; the old "minimum" was 1.9e-07
    rng = np.random.default_rng(0)
    lrs = list(np.logspace(-7, 1, 60))
    losses = [2.31 + 0.01 * rng.standard_normal() if lr < 0.12 else 2.3 * (lr / 0.12) ** 2 for lr in lrs]
    result = curve(losses, lrs)
    assert "never clearly fell" in result.problem
    assert all(math.isnan(getattr(result, m)) for m in ("valley", "steep", "minimum", "minimum_tenth"))
    for optimizer in ("sgd", "adam"):
        choice = result.choose("minimum", optimizer)
        assert choice.lr == FALLBACK_LR[optimizer] and choice.picked_by == "default" and choice.fallback
        assert choice.warning.startswith("LR finder: the loss never clearly fell") and "\n" not in choice.warning


def test_noise_as_large_as_the_fall_is_no_fall():
    rng = np.random.default_rng(1)
    losses = list(2.3 + 0.3 * rng.standard_normal(80))  # wild batch-to-batch noise around a flat level
    losses[40:45] = [1.9] * 5  # a dip smaller than 3 standard deviations of that noise
    assert curve(losses).problem is not None


def test_too_few_points_get_the_fallback():
    result = curve([2.3, 2.0, 1.5, 1.0, 0.8])
    assert "only 5 points" in result.problem
    assert result.choose("valley", "adamw").lr == FALLBACK_LR["adamw"]


def test_a_tenth_of_the_minimum_on_the_flat_start_falls_back_to_the_valley():
    lrs = list(np.logspace(-7, 1, 80))
    losses = [2.3 if lr < 0.05 else (1.0 if lr < 0.5 else 50.0) for lr in lrs]  # falls only between 0.05 and 0.5
    result = curve(losses, lrs)
    assert math.isnan(result.minimum_tenth) and math.isfinite(result.valley)
    choice = result.choose("minimum_tenth", "sgd")
    assert (choice.lr, choice.picked_by, choice.fallback) == (result.valley, "valley", True)
    assert choice.lr >= 0.01


def test_smoothing_suits_the_number_of_steps_and_does_not_shift_the_minimum():
    assert smoothing_window(30) == 3 and smoothing_window(100) == 11 and smoothing_window(5) == 1
    values = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    smoothed = moving_average(values, 3)
    assert int(np.argmin(smoothed)) == 4  # a centered average keeps the minimum where it is; an EMA delays it
    assert smoothed[0] == pytest.approx(4.5) and smoothed[4] == pytest.approx(5 / 3)


def test_longest_descent():
    assert longest_descent(np.array([5.0, 4.0, 6.0, 3.0, 2.0, 1.5, 7.0, 6.0])) == (2, 5)


def test_range_test_restores_the_model_and_optimizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    batches = Batches(images, torch.randint(0, 10, (256,)), 32, mean=(0.5,) * 3, std=(0.25,) * 3, train=True)
    result = lr_range_test(model, optimizer, batches, Precision("fp32", False, "cpu"), steps=12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.5 and not optimizer.state
    assert 1 < len(result.lrs) <= 12
    assert result.lrs == sorted(result.lrs)
    assert result.problem is not None  # 12 steps are too few to mean anything


def test_the_range_test_measures_the_loss_the_run_trains_with():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    batches = Batches(images, torch.randint(0, 10, (256,)), 32, mean=(0.5,) * 3, std=(0.25,) * 3, train=True)
    x, y = next(batches.forever())  # the test's first batch: forever() starts from the same epoch again
    with torch.no_grad():
        smoothed, plain = (F.cross_entropy(model(x), y, label_smoothing=s).item() for s in (0.1, 0.0))
    fp32 = Precision("fp32", False, "cpu")
    result = lr_range_test(model, optimizer, batches, fp32, steps=12, label_smoothing=0.1)
    assert result.raw_losses[0] == pytest.approx(smoothed, rel=1e-5)
    assert abs(smoothed - plain) > 1e-3


def test_a_loss_that_is_nan_from_the_first_step_falls_back_instead_of_failing():
    # Under torchrun a rank that raised here left rank 0 waiting in a broadcast until the process-group timeout.
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        model[1].weight.fill_(math.nan)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    batches = Batches(images, torch.randint(0, 10, (64,)), 32, mean=(0.5,) * 3, std=(0.25,) * 3, train=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, optimizer, batches, Precision("fp32", False, "cpu"), steps=30)
    assert result.lrs == [] and result.choose("minimum", "sgd").lr == FALLBACK_LR["sgd"]
