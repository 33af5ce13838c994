"""Accuracy, per-class accuracy, confusion matrix and most-confused class pairs."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepernets.data import Batches
from deepernets.train.device import Precision


@dataclass
class Evaluation:
    loss: float
    accuracy: float  # percent
    predictions: torch.Tensor  # int64 N, on CPU
    labels: torch.Tensor  # int64 N, on CPU


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, precision: Precision) -> Evaluation:
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    predictions, labels = [], []
    for x, y in batches:
        with precision.autocast():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        predictions.append(logits.argmax(1))
        labels.append(y)
    if not labels:  # a rank whose shard of a tiny test set is empty
        empty = torch.zeros(0, dtype=torch.int64)
        return Evaluation(0.0, 0.0, empty, empty)
    predicted, truth = torch.cat(predictions).cpu(), torch.cat(labels).cpu()
    n = max(1, len(truth))
    return Evaluation(loss_sum.item() / n, 100.0 * (predicted == truth).sum().item() / n, predicted, truth)


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
