"""The optional training features on tiny models: the weights' moving average, soft-label accuracy, flip TTA,
batch-norm statistics recomputed before evaluation."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepernets.config import RunConfig
from deepernets.data import Batches
from deepernets.errors import UserError
from deepernets.run.folder import RunDir
from deepernets.train import batch_norm, evaluate, fit
from deepernets.train.device import resolve_precision
from deepernets.train.distributed import World
from deepernets.train.optimizers import build_optimizer
from deepernets.train.schedules import Schedule
from deepernets.train.setup import moving_average

FP32 = resolve_precision("fp32", torch.device("cpu"))


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 10))


def tiny_batches(n: int = 48, **options) -> Batches:
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return Batches(images, torch.arange(n) % 10, 16, mean=(0.5,), std=(0.25,), size=8, **options)


def test_the_moving_average_is_the_hand_computed_average_of_the_weights_and_buffers_after_every_step():
    model = tiny_model()
    config = RunConfig(epochs=1, batch_size=16, schedule="constant", lr=0.1, ema=0.8)
    optimizer = build_optimizer(model, config, 0.1)
    after_steps = []
    optimizer.register_step_post_hook(
        lambda *_: after_steps.append({k: v.clone() for k, v in model.state_dict().items()})
    )
    ema = moving_average(model, config.ema)
    batches = tiny_batches(train=True)
    fit.train_epoch(model, optimizer, Schedule(config, 0.1, len(batches)), batches, FP32, None, config, 0, World(), ema)

    assert len(after_steps) == 3 and int(ema.n_averaged) == 3
    floats = [k for k, v in after_steps[0].items() if v.is_floating_point()]  # weights, BN running mean and var
    assert any("running_mean" in k for k in floats)
    expected = {k: after_steps[0][k] for k in floats}  # the first update copies the weights
    for weights in after_steps[1:]:
        expected = {k: 0.8 * expected[k] + 0.2 * weights[k] for k in floats}
    averaged = ema.module.state_dict()
    for k in floats:
        assert torch.allclose(averaged[k], expected[k], atol=1e-6), k
    # a value that training did not move has nothing to lag: a bias before batch norm gets a gradient of zero, or of
    # rounding noise, depending on how many threads summed it
    moved = [k for k in floats if not torch.equal(after_steps[-2][k], after_steps[-1][k])]
    assert "0.weight" in moved
    for k in moved:
        assert not torch.equal(averaged[k], after_steps[-1][k]), f"{k} should lag the trained weights"


def test_training_with_the_moving_average_leaves_the_trained_weights_unchanged():
    def run(ema: float) -> dict[str, torch.Tensor]:
        model = tiny_model()
        config = RunConfig(epochs=1, batch_size=16, schedule="constant", lr=0.1, ema=ema)
        optimizer = build_optimizer(model, config, 0.1)
        batches = tiny_batches(train=True)
        average = moving_average(model, ema) if ema else None
        fit.train_epoch(model, optimizer, Schedule(config, 0.1, 3), batches, FP32, None, config, 0, World(), average)
        return model.state_dict()

    plain, with_average = run(0.0), run(0.9)
    assert all(torch.equal(plain[k], with_average[k]) for k in plain)


def test_accuracy_with_soft_labels_counts_the_labels_weight_on_the_predicted_class():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 5.0]])
    assert fit.hits(logits, torch.tensor([0, 2, 2])).item() == 2
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6], [1.0, 0.0, 0.0]])
    assert fit.hits(logits, soft).item() == pytest.approx(0.7 + 0.4 + 0.0)
    # hard labels written as one-hot score the same as the labels themselves
    assert fit.hits(logits, F.one_hot(torch.tensor([0, 2, 2]), 3).float()).item() == 2


class Halves(nn.Module):
    """A model that tells left from right: its logits are linear in the left and right halves' mean pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        return self.linear(torch.stack([x[..., : w // 2].mean((1, 2, 3)), x[..., w // 2 :].mean((1, 2, 3))], 1))


def test_flip_tta_is_reported_beside_the_single_view_and_averages_the_softmax_of_image_and_mirror():
    torch.manual_seed(0)
    model = Halves()
    images = torch.randint(0, 256, (40, 1, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    batches = Batches(images, labels, 16, mean=(0.5,), std=(0.25,), size=8)

    single = evaluate.evaluate(model, batches, FP32)
    both = evaluate.evaluate(model, batches, FP32, flip_tta=True)
    assert single.tta is None
    assert (both.accuracy, both.loss) == (single.accuracy, single.loss), "the single view is unchanged"
    assert torch.equal(both.predictions, single.predictions)

    x = torch.cat([x for x, _ in batches])
    with torch.no_grad():
        mean = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    assert torch.equal(both.tta.predictions, mean.argmax(1))
    assert both.tta.loss == pytest.approx(F.nll_loss(mean.log(), labels).item(), rel=1e-5)
    assert both.tta.accuracy == pytest.approx(100 * (mean.argmax(1) == labels).float().mean().item())
    assert not torch.equal(both.tta.predictions, single.predictions), "this model sees the mirror differently"


def test_flip_tta_equals_the_single_view_on_images_that_are_their_own_mirror():
    torch.manual_seed(0)
    model = Halves()
    half = torch.randint(0, 256, (40, 1, 8, 4), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    images = torch.cat([half, half.flip(3)], 3)
    batches = Batches(images, torch.arange(40) % 10, 16, mean=(0.5,), std=(0.25,), size=8)
    result = evaluate.evaluate(model, batches, FP32, flip_tta=True)
    assert torch.equal(result.tta.predictions, result.predictions)
    assert math.isclose(result.tta.loss, result.loss, rel_tol=1e-6)


def test_flip_tta_is_refused_for_datasets_trained_without_flips():
    from types import SimpleNamespace

    cifar, mnist = SimpleNamespace(name="cifar10", augment="crop-flip"), SimpleNamespace(name="mnist", augment="none")
    evaluate.check_flip_tta(cifar, None)
    evaluate.check_flip_tta(mnist, True)  # --flip: mirrored digits were asked for
    for dataset, flip in ((mnist, None), (cifar, False)):
        with pytest.raises(UserError, match=f"--tta flip: {dataset.name} is trained without horizontal flips"):
            evaluate.check_flip_tta(dataset, flip)


def test_the_features_are_off_by_default_and_name_the_run_when_on():
    config = RunConfig(epochs=3)
    assert (config.ema, config.cutout, config.mixup, config.cutmix, config.tta) == (0.0, 0, 0.0, 0.0, "none")
    assert config.default_name() == "resnet20-cifar10-sgd-lr0.1-onecycle-e3-s0"
    assert config.precise_bn == 0
    on = config.replace(ema=0.999, cutout=16, mixup=0.2, cutmix=1.0, tta="flip", precise_bn=20)
    assert on.default_name() == (
        "resnet20-cifar10-sgd-lr0.1-onecycle-e3-s0-ema0.999-cutout16-mixup0.2-cutmix1.0-pbn20-ttaflip"
    )
    assert config.replace(low_res=24, low_res_epochs=2).default_name().endswith("-e3-s0-res24x2")
    assert config.shift is None and config.replace(shift=0).default_name().endswith("-e3-s0-shift0")
    assert config.flip is None and config.replace(flip=False).default_name().endswith("-e3-s0-noflip")


def test_precise_bn_sets_the_statistics_of_the_first_batches_for_the_weights_as_they_are():
    model = tiny_model().eval()
    weights = {k: v.clone() for k, v in model.named_parameters()}
    batches = tiny_batches(train=True)  # 3 batches of 16
    batch_norm.recompute_statistics(model, batches, 2, FP32)

    with torch.no_grad():
        features = [model[0](x) for x, _ in itertools.islice(batches, 2)]
    norm = model[1]
    expected_mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert torch.allclose(norm.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(norm.running_var, expected_var, atol=1e-5)
    assert norm.momentum == 0.1 and not model.training, "the layer's momentum and the model's mode are restored"
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())


def test_low_res_epochs_train_on_smaller_images_and_the_rest_and_every_test_at_full_size(
    tmp_path, data_dir, monkeypatch
):
    trained, tested, recomputed = [], [], []
    step, evaluation, recompute = fit.train_step, evaluate.evaluate, batch_norm.recompute_statistics

    def record_step(model, optimizer, x, *args):
        trained.append(tuple(x.shape[-2:]))
        return step(model, optimizer, x, *args)

    def record_evaluation(model, batches, *args, **kwargs):
        tested.append(next(iter(batches))[0].shape[-2:])
        return evaluation(model, batches, *args, **kwargs)

    def record_recompute(model, batches, *args):
        recomputed.append(next(iter(batches))[0].shape[-2:])
        return recompute(model, batches, *args)

    monkeypatch.setattr(fit, "train_step", record_step)
    monkeypatch.setattr(batch_norm, "recompute_statistics", record_recompute)
    monkeypatch.setattr(evaluate, "evaluate", record_evaluation)
    config = RunConfig(dataset="mnist", data_dir=str(data_dir), subset=128, test_subset=64, batch_size=32,
                       epochs=3, image_size=20, low_res=12, low_res_epochs=2, precise_bn=2, device="cpu",
                       runs_dir=str(tmp_path), name="progressive")  # fmt: skip
    summary = fit.train(config, log=lambda _: None)

    assert trained == [(12, 12)] * 8 + [(20, 20)] * 4, "4 steps an epoch: 2 epochs at --low-res, then full size"
    assert tested == recomputed == [(20, 20)] * 3, "each epoch's test, and the statistics it is tested with"
    assert summary["status"] == "finished"
    assert "low_res: 12" in (tmp_path / "progressive/config.yaml").read_text()
    full_size = RunDir(tmp_path / "progressive").read_metrics()[-1]
    assert summary["train_images_per_s"] == round(float(full_size["train_images_per_s"]), 1), "the speed at full size"
