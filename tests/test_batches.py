import torch

from deepernets.data import Batches
from deepernets.data.batches import random_crop_flip


def make(n: int = 100, **kwargs) -> Batches:
    images = torch.arange(n * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 3, 32, 32)
    labels = torch.arange(n) % 10
    defaults = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))
    return Batches(images, labels, 16, **{**defaults, **kwargs})


def test_random_crop_flip_is_a_shifted_window_of_the_zero_padded_image_mirrored_about_half_the_time():
    x = torch.randint(0, 256, (400, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(x, 4, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    mirrored = 0
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        plain = any(torch.equal(out[i], w) for w in windows)
        flipped = any(torch.equal(out[i], w.flip(2)) for w in windows)
        assert plain or flipped
        mirrored += flipped and not plain
    assert 150 < mirrored < 250


def test_random_crop_flip_writes_channels_last_with_the_same_pixels():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    nchw = random_crop_flip(x, 4, torch.Generator().manual_seed(1))
    nhwc = random_crop_flip(x, 4, torch.Generator().manual_seed(1), channels_last=True)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and nchw.is_contiguous()
    assert torch.equal(nchw, nhwc)


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
