import pytest
import torch

from deepernets.config import RunConfig
from deepernets.train.schedules import Schedule, lr_per_step


def lrs(schedule: str, epochs: int = 10, steps: int = 10, **kwargs) -> list[float]:
    s = Schedule(RunConfig(schedule=schedule, epochs=epochs, **kwargs), 0.1, steps)
    return [s.lr(i) for i in range(epochs * steps)]


def test_constant():
    assert set(lrs("constant")) == {0.1}


def test_onecycle_rises_to_the_peak_then_anneals_far_below_the_start():
    values = lrs("onecycle")
    peak = max(range(len(values)), key=values.__getitem__)
    assert values[peak] == pytest.approx(0.1)
    assert peak == 30  # 30% of the steps rising
    assert values[0] == pytest.approx(0.1 / 25)
    assert values[-1] == pytest.approx(0.1 / 25 / 1e4)


def test_cosine_with_warmup():
    values = lrs("cosine", warmup_epochs=1)
    assert values[0] == pytest.approx(0.01) and values[9] == pytest.approx(0.1)
    assert values[-1] < 1e-3 and values == values[:10] + sorted(values[10:], reverse=True)


def test_a_constant_lr_after_a_warmup_of_a_fraction_of_an_epoch():
    values = lrs("constant", epochs=2, warmup_epochs=0.5)
    assert values[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1]) and set(values[5:]) == {0.1}


def test_the_plotted_plateau_schedule_rises_through_its_warm_up_then_follows_the_logged_lr():
    config = RunConfig(schedule="plateau", epochs=3, warmup_epochs=0.5, lr=0.1)
    history = [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.01}]  # dropped after the second epoch's test
    values = lr_per_step(config, 4, history)
    assert values == pytest.approx([0.05, 0.1, 0.1, 0.1] + [0.1] * 4 + [0.01] * 4)


def test_multistep_drops_tenfold_at_half_and_three_quarters():
    values = lrs("multistep", epochs=8)
    assert values[39] == pytest.approx(0.1) and values[40] == pytest.approx(0.01)
    assert values[59] == pytest.approx(0.01) and values[60] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("epochs", "steps", "drops"),
    [
        (1, 10, [5, 8]),  # 7.5 rounds to 8; per-epoch rounding put both drops on epochs 0 and 1 (the end)
        (1, 391, [196, 293]),  # one CIFAR-10 epoch at batch 128
        (2, 7, [7, 10]),  # 10.5 rounds to 10; per epoch the second drop fell on step 14, after the run
        (3, 4, [6, 9]),  # per epoch both drops fell on epoch 2: a single ÷100
        (3, 10, [15, 22]),
    ],
)
def test_multistep_milestones_are_placed_on_steps(epochs, steps, drops):
    """Each drop lands on step round(fraction × total steps), as the paper's 32k and 48k iterations do."""
    values = lrs("multistep", epochs=epochs, steps=steps)
    expected = [0.1 * 0.1 ** sum(step >= d for d in drops) for step in range(epochs * steps)]
    assert values == pytest.approx(expected)


def test_plateau_drops_after_patience_and_restores_its_state():
    s = Schedule(RunConfig(schedule="plateau", patience=2), 0.1, 10)
    for loss in (1.0, 0.9, 0.95, 0.95):
        s.end_epoch(loss)
    assert s.lr(0) == pytest.approx(0.1)
    s.end_epoch(0.95)
    assert s.lr(0) == pytest.approx(0.01)
    restored = Schedule(RunConfig(schedule="plateau", patience=2), 0.1, 10)
    restored.load_state_dict(s.state_dict())
    assert restored.lr(0) == s.lr(0) and restored.state_dict() == s.state_dict()


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_plateau_equals_torch_reduce_lr_on_plateau(patience):
    """Per epoch, our LR equals torch's ReduceLROnPlateau (mode min, rel threshold 1e-4, cooldown 0) fed the same
    test losses: the LR drops once the loss has not improved for more than `patience` epochs in a row."""
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.79995, 0.81, 0.7, 0.75, 0.75, 0.75, 0.75, 0.75, 0.6, 0.6, 0.6]
    ours = Schedule(RunConfig(schedule="plateau", patience=patience), 0.1, 10)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.1, patience=patience, threshold=1e-4, threshold_mode="rel", cooldown=0
    )
    ours_per_epoch, theirs_per_epoch = [], []
    for loss in losses:  # the LR each epoch trains with, then that epoch's test loss
        ours_per_epoch.append(ours.lr(0))
        theirs_per_epoch.append(optimizer.param_groups[0]["lr"])
        ours.end_epoch(loss)
        theirs.step(loss)
    assert ours_per_epoch == pytest.approx(theirs_per_epoch)
    assert min(ours_per_epoch) < 0.1  # the sequence does make it drop
