"""The two input pipelines the benchmark compares, on synthetic CIFAR-shaped data.

"ours": device-resident uint8 data with batched tensor augmentation (data.Batches). "classic": a torchvision-style
Dataset with PIL transforms (RandomCrop(32, 4), RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader (pinned
memory on CUDA), as the usual CIFAR repositories train.
"""

from collections.abc import Iterator

import torch

from deepernets.data import Batches

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 CIFAR-shaped images; pixel values do not change the arithmetic being timed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


class ClassicDataset(torch.utils.data.Dataset):
    """The usual CIFAR repo recipe: a PIL image per sample through torchvision transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images = images.permute(0, 2, 3, 1).numpy()  # N×H×W×C, as PIL wants
        self.labels = labels.tolist()
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def our_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device, channels_last: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches, epoch after epoch, as a run makes them."""
    return Batches(images, labels, batch_size, mean=CIFAR_MEAN, std=CIFAR_STD, augment="crop-flip", train=True,
                   device=device, channels_last=channels_last).forever()  # fmt: skip


def classic_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device, workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches from a DataLoader of PIL transforms, copied to the device (one epoch of them)."""
    pin = device.type == "cuda"  # as classic GPU scripts do: pinned batches, copied without blocking
    loader = torch.utils.data.DataLoader(
        ClassicDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=pin,
    )  # fmt: skip
    return ((x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)) for x, y in loader)
