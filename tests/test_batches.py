import torch

from deepernets.data import Batches
from deepernets.data.batches import random_crop, random_flip


def make(n: int = 100, **kwargs) -> Batches:
    images = torch.arange(n * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 3, 32, 32)
    labels = torch.arange(n) % 10
    defaults = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))
    return Batches(images, labels, 16, **{**defaults, **kwargs})


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_random_flip_flips_about_half():
    x = torch.randint(0, 256, (2000, 1, 4, 4), dtype=torch.uint8)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(2)) and not torch.equal(out[i], x[i]) for i in range(len(x))]
    assert 900 < sum(flipped) < 1100
    assert all(torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2)) for i in range(len(x)))


def test_training_batches_are_deterministic_per_epoch_and_differ_between_epochs():
    a, b = make(train=True, augment="crop-flip", seed=3), make(train=True, augment="crop-flip", seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.set_epoch(3)
    assert not torch.equal(next(iter(a))[1], next(iter(b))[1])


def test_training_drops_the_incomplete_last_batch_and_eval_keeps_everything():
    train = make(train=True)
    assert len(train) == 6 and sum(len(y) for _, y in train) == 96
    test = make(train=False)
    assert len(test) == 7
    assert torch.equal(torch.cat([y for _, y in test]), torch.arange(100) % 10)


def test_shards_are_disjoint_and_cover_the_epoch():
    seen = []
    for rank in range(2):
        shard = make(n=64, train=True, shard=(rank, 2), seed=1)
        shard.set_epoch(5)
        seen.append(set(shard.order().tolist()))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(64))


def test_normalization_and_resize():
    images = torch.full((4, 1, 28, 28), 51, dtype=torch.uint8)
    batches = Batches(images, torch.zeros(4, dtype=torch.int64), 4, mean=(0.1,), std=(0.2,), size=32)
    x, _ = next(iter(batches))
    assert x.shape == (4, 1, 32, 32)
    assert torch.allclose(x, torch.full_like(x, (0.2 - 0.1) / 0.2), atol=1e-5)


def test_channels_last_output():
    x, _ = next(iter(make(channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
