import math

import numpy as np
import pytest
import torch
from torch import nn

from deepernets.data import Batches
from deepernets.train.device import Precision
from deepernets.train.lr_finder import LRFinderResult, longest_descent, lr_range_test, suggest


def test_suggestions_on_a_known_curve():
    lrs = list(np.logspace(-7, 1, 100))
    # flat, then falling between 1e-4 and 1e-1, then blowing up
    losses = [
        2.3 if lr < 1e-4 else (2.3 - 0.5 * math.log10(lr / 1e-4) if lr < 1e-1 else 0.8 + 10 * (lr - 0.1)) for lr in lrs
    ]
    result = LRFinderResult(lrs=lrs, losses=losses, raw_losses=losses)
    suggest(result)
    assert 1e-4 < result.valley < 1e-1
    assert 1e-4 < result.steep < 1e-1
    assert result.minimum == pytest.approx(lrs[int(np.argmin(losses))])
    assert result.minimum_tenth == pytest.approx(result.minimum / 10)
    assert result.pick("minimum") == result.minimum and result.pick() == result.valley
    assert not result.too_few_points


def test_longest_descent():
    assert longest_descent(np.array([5.0, 4.0, 6.0, 3.0, 2.0, 1.5, 7.0, 6.0])) == (2, 5)


def test_range_test_restores_the_model_and_optimizer_and_warns_of_too_few_points():
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
    assert result.too_few_points
