"""A fixed part of a split: `--subset` and `--test-subset` keep the same images in every run and every command."""

import torch

SUBSET_SEED = 0  # subsets are drawn with a fixed seed so every run of a study sees the same images


def take_subset(images: torch.Tensor, labels: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n of a fixed shuffle of the split (all of it when n is None or too large)."""
    if n is None or n >= len(labels):
        return images, labels
    keep = subset_indices(len(labels), n)
    return images[keep], labels[keep]


def subset_indices(count: int, n: int | None) -> torch.Tensor:
    """The positions in a split of `count` images that take_subset keeps, in order."""
    if n is None or n >= count:
        return torch.arange(count)
    return torch.randperm(count, generator=torch.Generator().manual_seed(SUBSET_SEED))[:n].sort().values
