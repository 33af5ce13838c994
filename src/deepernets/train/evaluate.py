"""Accuracy, the confusion matrix and its per-class scores (run.scores), confidently wrong images; flip test-time
augmentation."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepernets.data import Batches, Dataset
from deepernets.data.batches import mirrors
from deepernets.errors import UserError
from deepernets.run import plots
from deepernets.run.atomic import write_text
from deepernets.run.folder import RunDir, to_csv
from deepernets.run.scores import per_class_scores
from deepernets.train.device import Precision

PER_CLASS_COLUMNS = ["class", "accuracy", "precision", "recall", "f1", "images"]  # accuracy is recall, kept by name
WRONG_COLUMNS = ["rank", "test_index", "true", "predicted", "probability"]


@dataclass
class Evaluation:
    loss: float
    accuracy: float  # percent
    predictions: torch.Tensor  # int64 N, on CPU
    labels: torch.Tensor  # int64 N, on CPU
    confidences: torch.Tensor  # float32 N, on CPU: the softmax probability of each predicted class
    tta: "Evaluation | None" = None  # with flip TTA: the same images judged by the image and its mirror together


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Batches, precision: Precision, flip_tta: bool = False) -> Evaluation:
    """The model's single-view loss and accuracy; with `flip_tta` also, in `.tta`, those of the softmax averaged
    over each image and its horizontal mirror (the loss is then the negative log of that average)."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    tta_loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    probabilities, labels, tta_log_means = [], [], []
    for x, y in batches:
        with precision.autocast():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        probabilities.append(logits.float().softmax(1))
        labels.append(y)
        if flip_tta:
            with precision.autocast():
                mirrored = model(x.flip(3))
            # log of the mean of the two softmaxes, computed from log-softmaxes so that it cannot underflow to -inf
            views = torch.stack([logits.float().log_softmax(1), mirrored.float().log_softmax(1)])
            log_mean = views.logsumexp(0) - math.log(2)
            tta_loss_sum += F.nll_loss(log_mean, y, reduction="sum")
            tta_log_means.append(log_mean)
    if not labels:  # a rank whose shard of a tiny test set is empty
        result = _empty_evaluation()
        result.tta = _empty_evaluation() if flip_tta else None
        return result
    truth = torch.cat(labels).cpu()
    tta = _evaluation(tta_loss_sum, torch.cat(tta_log_means).exp(), truth) if flip_tta else None
    return _evaluation(loss_sum, torch.cat(probabilities), truth, tta)


def _empty_evaluation() -> Evaluation:
    empty = torch.zeros(0, dtype=torch.int64)
    return Evaluation(0.0, 0.0, empty, empty, empty.float())


def _evaluation(
    loss_sum: torch.Tensor, probabilities: torch.Tensor, truth: torch.Tensor, tta: Evaluation | None = None
) -> Evaluation:
    confidences, predicted = probabilities.float().max(1)
    predicted = predicted.cpu()
    n = max(1, len(truth))
    accuracy = 100.0 * (predicted == truth).sum().item() / n
    return Evaluation(loss_sum.item() / n, accuracy, predicted, truth, confidences.cpu(), tta)


def check_flip_tta(dataset: Dataset, flip: bool | None) -> None:
    """Flip TTA only where training flips too (`flip`, the run's setting): digits are never flipped by default, as
    a mirrored digit is no digit."""
    if not mirrors(dataset.augment, flip):
        raise UserError(
            f"--tta flip: {dataset.name} is trained without horizontal flips here (MNIST-like images by default, "
            "any with --no-flip), so the model has never seen a mirrored image and a mirrored view would only "
            "mislead it; leave --tta out"
        )


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confidently_wrong(result: Evaluation, top: int = 16) -> list[int]:
    """Positions of the wrongly classified images, the most confident mistakes first (ties: lower position first)."""
    wrong = (result.predictions != result.labels).nonzero().flatten()
    order = torch.sort(result.confidences[wrong], descending=True, stable=True).indices
    return wrong[order][:top].tolist()


def write_results(
    run: RunDir,
    result: Evaluation,
    classes: list[str],
    images: torch.Tensor,
    test_indices: torch.Tensor,
    test_files: list[str] | None = None,
) -> None:
    """Write confusion.csv, per_class.csv, confidently_wrong.csv and their figures into the run folder.

    `images` are the evaluated uint8 N×C×H×W images in the order of `result`; `test_indices` their positions in
    the test split, so the CSV names each image wherever a --test-subset picked it from; `test_files` (a folder
    dataset's) add each one's file.
    """
    confusion = confusion_matrix(result.predictions, result.labels, len(classes))
    corner = "true \\ predicted"  # not "true", which a class may be named (yes/no, true/false data)
    rows = [
        {corner: classes[i], **{c: int(v) for c, v in zip(classes, confusion[i].tolist(), strict=True)}}
        for i in range(len(classes))
    ]
    write_text(run.path / "confusion.csv", to_csv(rows, [corner, *classes]))
    scores = [
        {"class": c, "accuracy": round(s.recall, 2), "precision": round(s.precision, 2), "recall": round(s.recall, 2),
         "f1": round(s.f1, 2), "images": s.images}
        for c, s in zip(classes, per_class_scores(confusion.tolist()), strict=True)
    ]  # fmt: skip
    write_text(run.path / "per_class.csv", to_csv(scores, PER_CLASS_COLUMNS))
    plots.confusion_heatmap(confusion.tolist(), classes, run.plots / "confusion.png", f"{run.name}")

    wrong = confidently_wrong(result)
    mistakes = [
        {"rank": rank, "test_index": int(test_indices[i]), "true": classes[result.labels[i]],
         "predicted": classes[result.predictions[i]], "probability": round(result.confidences[i].item(), 4)}
        for rank, i in enumerate(wrong, 1)
    ]  # fmt: skip
    if test_files is not None:
        for mistake in mistakes:
            mistake["file"] = test_files[mistake["test_index"]]
    columns = WRONG_COLUMNS + (["file"] if test_files is not None else [])
    write_text(run.path / "confidently_wrong.csv", to_csv(mistakes, columns))
    picture = run.plots / "confidently_wrong.png"
    if mistakes:
        captions = [f"#{m['test_index']}: true {m['true']}\npredicted {m['predicted']} ({m['probability']:.0%})"
                    for m in mistakes]  # fmt: skip
        pixels = images[torch.tensor(wrong, device=images.device)].cpu().numpy()
        plots.image_grid(pixels, captions, picture, f"{run.name}: most confidently wrong test images")
    else:  # none wrong: a picture left from an earlier evaluation would no longer be true
        picture.unlink(missing_ok=True)
