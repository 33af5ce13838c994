"""The LR finder on real images, as the seed preset runs it: a usable one-cycle peak for SGD on every model."""

import pytest

from deepernets import study
from deepernets.train.lr_finder_run import find_lr
from deepernets.train.setup import build_local_parts

SLOW = pytest.mark.slow  # 100 steps at batch 128 take minutes on a 2-core CPU; tests/test_lr_finder.py has the rules


@pytest.mark.parametrize(
    "dataset, model",
    [
        pytest.param("mnist", "resnet20", marks=SLOW),  # 13 s with bf16, 107 s on an fp32-only CPU
        pytest.param("cifar10", "resnet20", marks=SLOW),
        pytest.param("mnist", "vgg11_bn", marks=SLOW),
        pytest.param("mnist", "vgg13_bn", marks=SLOW),
        pytest.param("cifar10", "vgg11_bn", marks=SLOW),
        pytest.param("cifar10", "vgg13_bn", marks=SLOW),
    ],
)
def test_the_seed_presets_range_test_picks_a_sane_sgd_peak(tmp_path, data_dir, dataset, model):
    grid = study.load_grid("seed")
    planned = study.expand(grid, tmp_path, {"subset": 5000, "data_dir": str(data_dir)})
    config = next(
        p.config.replace(model=model)
        for p in planned
        if p.cell["policy"] == "scheduler" and p.config.optimizer == "sgd" and p.config.dataset == dataset
    )
    probe = config.replace(lr=1e-7)
    parts, precision = build_local_parts(probe)
    lines: list[str] = []
    result = find_lr(parts.model, probe, parts.train_batches, precision, tmp_path, lines.append,
                     steps=grid.lr_finder_steps)  # fmt: skip
    assert 1e-3 <= result["suggested_lr"] <= 1, (result, lines)
    assert (tmp_path / "lr_finder.csv").exists() and (tmp_path / "plots" / "lr_finder.png").exists()
