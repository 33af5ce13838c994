"""Device-resident batches with batched augmentation: no per-sample Python and no worker processes.

The whole split lives on the training device as uint8. Each epoch's order and augmentation come from a
generator seeded by (seed, epoch), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from collections.abc import Iterator

import torch
import torch.nn.functional as F

CROP_PADDING = 4


SHUFFLE_STREAM, AUGMENT_STREAM, DROPOUT_STREAM = 0, 1, 1 << 20  # + rank for the per-rank streams


def epoch_seed(seed: int, epoch: int, stream: int = SHUFFLE_STREAM) -> int:
    """The seed of one (seed, epoch, stream): each epoch's draws depend on nothing else, so resuming repeats them."""
    return (seed * 1_000_003 + epoch) * 1_009 + stream


def epoch_generator(seed: int, epoch: int, stream: int = SHUFFLE_STREAM) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))


class Batches:
    """Iterate (images, labels) batches: float normalized images, optionally augmented, and int64 labels.

    `shard=(rank, world)` gives each rank a disjoint 1/world of every epoch's shuffled order.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: str = "none",  # "crop-flip" or "none"; a size other than `size` is always resized
        train: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        size: int = 32,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.augment = augment if train else "none"
        self.train = train
        self.seed = seed
        self.rank, self.world = shard
        self.size = size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, device=self.device).view(shape) * 255
        self.std = torch.tensor(std, device=self.device).view(shape) * 255
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch (training: shuffled, whole batches only)."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(n)[self.rank :: self.world]
        perm = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
        per_rank = (n // self.world) // self.batch_size * self.batch_size
        return perm[self.rank :: self.world][:per_rank]

    def __len__(self) -> int:
        if self.train:
            return (len(self.labels) // self.world) // self.batch_size
        return -(-len(range(self.rank, len(self.labels), self.world)) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order().to(self.device)
        generator = epoch_generator(self.seed, self.epoch, AUGMENT_STREAM + self.rank)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.prepare(self.images[idx], generator), self.labels[idx]

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch after epoch, for a fixed number of steps that may exceed one epoch."""
        epoch = self.epoch
        while True:
            self.set_epoch(epoch)
            yield from self
            epoch += 1

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 N×C×H×W -> augmented, resized, normalized float in the chosen memory format."""
        if self.augment == "crop-flip":
            x = random_crop_flip(x, CROP_PADDING, generator, self.memory_format == torch.channels_last)
        x = x.float()
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)


def random_crop_flip(
    x: torch.Tensor, padding: int, generator: torch.Generator | None, channels_last: bool = False
) -> torch.Tensor:
    """Pad with zeros by `padding`, take one random H×W window per image and mirror it with probability 0.5.

    One gather over the flattened pixels does all three, straight into the wanted memory format: three times
    faster than separate crop, flip and layout steps, which cost 3% of a resnet20 training step on CPU.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    steps = torch.arange(w, device=x.device)
    columns = dx[:, None] + torch.where(flip[:, None], steps.flip(0), steps)
    pixels = (rows[:, :, None] * (w + 2 * padding) + columns[:, None, :]).view(n, h * w)
    if channels_last:
        source = padded.permute(0, 2, 3, 1).reshape(n, -1, c)
        return source.gather(1, pixels[:, :, None].expand(n, h * w, c)).view(n, h, w, c).permute(0, 3, 1, 2)
    return padded.reshape(n, c, -1).gather(2, pixels[:, None, :].expand(n, c, h * w)).view(n, c, h, w)
