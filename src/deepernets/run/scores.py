"""Scores read off a confusion matrix (rows true classes, columns predicted): per-class precision, recall and F1,
and the most-confused class pairs. Plain Python, so that the report can compute them from confusion.csv without
torch; training and `evaluate` pass their matrix as nested lists."""

from collections.abc import Sequence
from dataclasses import dataclass

Confusion = Sequence[Sequence[int]]


@dataclass
class ClassScores:
    """One class's scores in percent; recall is the class's accuracy (correct / its test images)."""

    precision: float
    recall: float
    f1: float
    images: int  # test images of this class


def _ratio(part: float, whole: float) -> float:
    """100 · part / whole, and 0 where whole is 0: as scikit-learn's default, a class the model never names (or
    one without test images) cannot look perfect."""
    return 100 * part / whole if whole > 0 else 0.0


def per_class_scores(confusion: Confusion) -> list[ClassScores]:
    """Precision, recall and F1 of each class of a confusion matrix (rows true, columns predicted)."""
    k = len(confusion)
    scores = []
    for i in range(k):
        correct = float(confusion[i][i])
        actual = sum(confusion[i])
        predicted = sum(confusion[j][i] for j in range(k))
        precision, recall = _ratio(correct, predicted), _ratio(correct, actual)
        both = precision + recall
        f1 = 2 * precision * recall / both if both > 0 else 0.0
        scores.append(ClassScores(precision, recall, f1, int(actual)))
    return scores


def most_confused_pairs(confusion: Confusion, classes: list[str], top: int = 5) -> list[tuple[str, str, int]]:
    """Unordered class pairs by how often either was taken for the other, most first."""
    pairs = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            count = int(confusion[i][j] + confusion[j][i])
            if count:
                pairs.append((classes[i], classes[j], count))
    return sorted(pairs, key=lambda p: -p[2])[:top]


def format_pairs(pairs: list[tuple[str, str, int]]) -> str:
    return ", ".join(f"{a}↔{b}: {n}" for a, b, n in pairs)
