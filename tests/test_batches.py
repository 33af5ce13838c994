import torch

from deepernets.data import Batches
from deepernets.data.batches import AUGMENT_STREAM, epoch_generator, random_crop_flip


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


def test_shift_moves_digits_without_ever_mirroring_them_and_only_in_training():
    images = torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8)
    batches = Batches(images, torch.zeros(200, dtype=torch.int64), 200, mean=(0.0,), std=(1 / 255,), size=28,
                      augment="none", shift=2, train=True)  # fmt: skip
    (out, _), padded = next(iter(batches)), torch.nn.functional.pad(images[batches.order()], (2, 2, 2, 2))
    offsets = set()
    for i in range(len(images)):
        windows = {(dy, dx): padded[i, :, dy : dy + 28, dx : dx + 28].float() for dy in range(5) for dx in range(5)}
        found = [at for at, w in windows.items() if torch.equal(out[i], w)]
        assert found, "each image is a shifted window of itself, never a mirrored one"
        offsets.update(found)
    assert len(offsets) > 15  # the shifts are spread over the 5×5 offsets
    test = Batches(images, torch.zeros(200, dtype=torch.int64), 200, mean=(0.0,), std=(1 / 255,), size=28,
                   augment="none", shift=2)  # fmt: skip
    assert torch.equal(next(iter(test))[0], images.float())


def test_shift_zero_turns_off_the_crop_of_cifar_like_data_but_keeps_its_flip():
    batches = make(train=True, augment="crop-flip", shift=0)
    x, _ = next(iter(batches))
    source = batches.images[batches.order()[:16]].float()
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(x, source, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(x, source, strict=True))


def test_no_flip_turns_off_the_mirror_of_cifar_like_data_and_flip_turns_it_on_for_others():
    unflipped = make(train=True, augment="crop-flip", shift=0, flip=False)
    x, _ = next(iter(unflipped))
    assert torch.equal(x, unflipped.images[unflipped.order()[:16]].float())
    flipped = make(train=True, augment="none", flip=True)
    x, _ = next(iter(flipped))
    source = flipped.images[flipped.order()[:16]].float()
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(x, source, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(x, source, strict=True))
    assert not make(augment="crop-flip", flip=True).flip, "test batches are never mirrored"


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


def noise(n: int = 96) -> torch.Tensor:
    """Random images: normalized with mean 0.5 (below) no pixel, not even crop padding, becomes exactly 0."""
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)


def pair(images: torch.Tensor, plain: dict, changed: dict, epoch: int = 1) -> list[tuple]:
    """(plain x, plain y, changed x, changed y) for every batch of one epoch of two Batches of the same images."""
    labels = torch.arange(len(images)) % 10
    common = dict(mean=(0.5,) * 3, std=(1 / 255,) * 3, train=True, seed=2, num_classes=10)
    a = Batches(images, labels, 16, **common, **plain)
    b = Batches(images, labels, 16, **common, **changed)
    a.set_epoch(epoch)
    b.set_epoch(epoch)
    return [(xa, ya, xb, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)]


def test_with_the_new_augmentations_off_training_batches_are_the_crop_flip_batches_of_before():
    images, labels = noise(), torch.arange(96) % 10
    batches = Batches(images, labels, 16, mean=(0.5,) * 3, std=(0.2,) * 3, augment="crop-flip", train=True, seed=6,
                      cutout=0, mixup=0.0, cutmix=0.0, num_classes=10)  # fmt: skip
    batches.set_epoch(3)
    # what the loop did before these options existed: the epoch's order, then crop and flip from one generator
    generator = epoch_generator(6, 3, AUGMENT_STREAM)
    order = batches.order()
    for i, (x, y) in enumerate(batches):
        idx = order[16 * i : 16 * (i + 1)]
        expected = (random_crop_flip(images[idx], 4, generator).float() - 0.5 * 255) / (0.2 * 255)
        assert torch.equal(x, expected) and torch.equal(y, labels[idx]) and y.dtype == torch.int64


def test_cutout_zeroes_exactly_one_square_per_image_clipped_at_the_borders_and_changes_nothing_else():
    clipped = 0
    for plain_x, plain_y, x, y in pair(noise(), {"augment": "crop-flip"}, {"augment": "crop-flip", "cutout": 8}):
        assert torch.equal(y, plain_y)
        zero = x == 0
        assert not (plain_x == 0).any()
        assert torch.equal(zero, zero[:, :1].expand_as(zero)), "every channel of the same pixels"
        assert torch.equal(x[~zero], plain_x[~zero]), "the crop and flip draws are those without cutout"
        for mask in zero[:, 0]:
            rows, columns = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
            assert mask.sum() == (bottom - top) * (right - left), "one filled rectangle"
            for start, end in ((top, bottom), (left, right)):
                side = end - start
                assert side == 8 or (side < 8 and (start == 0 or end == 32)), "8 pixels unless clipped at a border"
                assert side >= 4, "the centre lies in the image"
            clipped += (bottom - top) * (right - left) < 64
    assert clipped > 0, "some squares reach over a border"


def test_mixup_rows_are_convex_combinations_of_two_images_with_matching_soft_labels():
    lams = set()
    for plain_x, plain_y, x, y in pair(noise(), {}, {"mixup": 1.0}):
        one_hot = torch.nn.functional.one_hot(plain_y, 10).float()
        assert y.shape == (16, 10) and torch.allclose(y.sum(1), torch.ones(16))
        partners = []
        for i in range(16):
            # for each candidate partner j, the λ that best writes x[i] as λ·image i + (1 − λ)·image j
            fits = []
            for j in range(16):
                d = (plain_x[i] - plain_x[j]).flatten()
                lam = 1.0 if j == i else float(d @ (x[i] - plain_x[j]).flatten() / (d @ d))
                error = (x[i] - lam * plain_x[i] - (1 - lam) * plain_x[j]).abs().max().item()
                fits.append((error, j, lam))
            error, j, lam = min(fits, key=lambda f: (f[0] > 1e-3, f[1] != i))  # a fit, itself first: then λ is moot
            assert error < 1e-3, f"row {i} is no mix of two images of the batch"
            assert 0 <= lam <= 1 + 1e-6
            assert torch.allclose(y[i], lam * one_hot[i] + (1 - lam) * one_hot[j], atol=1e-4)
            partners.append(j)
            if j != i:
                lams.add(round(lam, 4))
        assert sorted(partners) == list(range(16)), "the partners are a permutation of the batch"
    assert len(lams) > 1, "λ is drawn anew for each batch"


def test_cutmix_pastes_one_box_and_weighs_the_labels_by_the_pasted_area():
    boxes = 0
    for plain_x, plain_y, x, y in pair(noise(), {}, {"cutmix": 1.0}):
        one_hot = torch.nn.functional.one_hot(plain_y, 10).float()
        changed = (x != plain_x).any(1)  # N×H×W
        if not changed.any():  # a box of no area (λ near 1)
            assert torch.equal(y, one_hot)
            continue
        boxes += 1
        anywhere = changed.any(0)
        rows, columns = anywhere.any(1).nonzero().flatten(), anywhere.any(0).nonzero().flatten()
        box = (slice(None), slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
        area = (box[1].stop - box[1].start) * (box[2].stop - box[2].start)
        assert anywhere.sum() == area, "one rectangle, at the same place in every image"
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[box[1:]] = False
        assert torch.equal(x[:, :, outside], plain_x[:, :, outside])
        for i in range(16):
            (j,) = [j for j in range(16) if torch.equal(x[i][box], plain_x[j][box])]
            share = area / (32 * 32)
            assert torch.allclose(y[i], (1 - share) * one_hot[i] + share * one_hot[j], atol=1e-6)
    assert boxes >= 4


def test_with_mixup_and_cutmix_on_each_batch_gets_one_of_them():
    def pasted(x: torch.Tensor, plain_x: torch.Tensor) -> bool:
        """Every image is its own pixels where unchanged and another image's pixels where changed."""
        return all(
            any(torch.equal(torch.where(x[i] == plain_x[i], plain_x[j], x[i]), plain_x[j]) for j in range(len(x)))
            for i in range(len(x))
        )

    kinds = [pasted(x, plain_x) for plain_x, _, x, _ in pair(noise(160), {}, {"mixup": 1.0, "cutmix": 1.0}, epoch=0)]
    assert True in kinds and False in kinds


def test_augmentations_apply_to_training_batches_only_and_keep_channels_last():
    options = dict(augment="crop-flip", cutout=8, mixup=0.2, cutmix=1.0, num_classes=10)
    x, y = next(iter(make(train=True, channels_last=True, **options)))
    assert x.is_contiguous(memory_format=torch.channels_last) and y.shape == (16, 10)
    test_x, test_y = next(iter(make(train=False, **options)))
    assert torch.equal(test_x, next(iter(make(train=False)))[0]) and test_y.dtype == torch.int64


def test_digits_get_cutout_but_never_a_flip_or_shift(data_dir):
    from deepernets.config import RunConfig
    from deepernets.train.setup import build_local_parts

    config = RunConfig(dataset="mnist", data_dir=str(data_dir), subset=64, batch_size=16, cutout=10, device="cpu")
    parts, _ = build_local_parts(config.validate())
    batches = parts.train_batches
    assert batches.augment == "none"
    order = batches.order()
    for i, (x, _) in enumerate(batches):
        plain = batches.prepare(batches.images[order[16 * i : 16 * (i + 1)]])  # resized and normalized only
        kept = x != 0
        assert torch.equal(x[kept], plain[kept]) and (~kept).any()
