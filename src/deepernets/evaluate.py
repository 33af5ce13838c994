"""Accuracy, per-class accuracy, confusion matrix and most-confused class pairs; flip test-time augmentation."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepernets.data import Batches, Dataset
from deepernets.errors import UserError
from deepernets.train.device import Precision


@dataclass
class Evaluation:
    loss: float
    accuracy: float  # percent
    predictions: torch.Tensor  # int64 N, on CPU
    labels: torch.Tensor  # int64 N, on CPU
    tta: "Evaluation | None" = None  # with flip TTA: the same images judged by the image and its mirror together


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, precision: Precision, flip_tta: bool = False) -> Evaluation:
    """The model's single-view loss and accuracy; with `flip_tta` also, in `.tta`, those of the softmax averaged
    over each image and its horizontal mirror (the loss is then the negative log of that average)."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    tta_loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    predictions, tta_predictions, labels = [], [], []
    for x, y in batches:
        with precision.autocast():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        predictions.append(logits.argmax(1))
        labels.append(y)
        if flip_tta:
            with precision.autocast():
                mirrored = model(x.flip(3))
            # log of the mean of the two softmaxes, computed from log-softmaxes so that it cannot underflow to -inf
            views = torch.stack([logits.float().log_softmax(1), mirrored.float().log_softmax(1)])
            log_mean = views.logsumexp(0) - math.log(2)
            tta_loss_sum += F.nll_loss(log_mean, y, reduction="sum")
            tta_predictions.append(log_mean.argmax(1))
    if not labels:  # a rank whose shard of a tiny test set is empty
        empty = torch.zeros(0, dtype=torch.int64)
        return Evaluation(0.0, 0.0, empty, empty, Evaluation(0.0, 0.0, empty, empty) if flip_tta else None)
    truth = torch.cat(labels).cpu()
    tta = _evaluation(tta_loss_sum, tta_predictions, truth) if flip_tta else None
    return _evaluation(loss_sum, predictions, truth, tta)


def _evaluation(
    loss_sum: torch.Tensor, predictions: list[torch.Tensor], truth: torch.Tensor, tta: Evaluation | None = None
) -> Evaluation:
    predicted = torch.cat(predictions).cpu()
    n = max(1, len(truth))
    return Evaluation(loss_sum.item() / n, 100.0 * (predicted == truth).sum().item() / n, predicted, truth, tta)


def check_flip_tta(dataset: Dataset) -> None:
    """Flip TTA only where training flips too: digits are never flipped, as a mirrored digit is no digit."""
    if dataset.augment != "crop-flip":
        raise UserError(
            f"--tta flip: {dataset.name} is trained without horizontal flips (MNIST-like images never are), so its "
            "models have never seen a mirrored image and a mirrored view would only mislead them; leave --tta out"
        )


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> list[float]:
    totals = confusion.sum(1).clamp(min=1)
    return (100.0 * confusion.diag() / totals).tolist()


def most_confused_pairs(confusion: torch.Tensor, classes: list[str], top: int = 5) -> list[tuple[str, str, int]]:
    """Unordered class pairs by how often either was taken for the other, most first."""
    pairs = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            count = int(confusion[i, j] + confusion[j, i])
            if count:
                pairs.append((classes[i], classes[j], count))
    return sorted(pairs, key=lambda p: -p[2])[:top]


def format_pairs(pairs: list[tuple[str, str, int]]) -> str:
    return ", ".join(f"{a}↔{b}: {n}" for a, b, n in pairs)
