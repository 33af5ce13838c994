"""Use a finished run: rebuild its model from the checkpoint, evaluate it on its test set, classify images."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepernets import data, models
from deepernets.data.formats import read_image
from deepernets.data.subset import subset_indices, take_subset
from deepernets.errors import UserError
from deepernets.run import scores
from deepernets.run.folder import RunDir
from deepernets.train import checkpoint, evaluate, progress
from deepernets.train.device import Precision, place_model, resolve_device, resolve_precision


@dataclass
class LoadedRun:
    run: RunDir
    model: nn.Module
    data: dict[str, Any]  # classes, mean, std, in_channels, image_size, stored_size (newer checkpoints)
    precision: Precision
    device: torch.device
    recorded: dict[str, Any]  # its summary.json: status, precision, final accuracy

    @property
    def note(self) -> str | None:
        return unfinished(self.run.path, self.recorded)

    def batches(self, images: torch.Tensor, labels: torch.Tensor) -> data.Batches:
        return data.Batches(
            images,
            labels,
            256,
            mean=tuple(self.data["mean"]),
            std=tuple(self.data["std"]),
            device=self.device,
            size=self.data["image_size"],
            channels_last=self.precision.channels_last,
        )


def plain_model(run: RunDir) -> tuple[nn.Module, dict[str, Any]]:
    """The run's model as models.build makes it, holding its checkpoint's weights: fp32, on the CPU, in eval mode,
    without place_model's CPU layer swaps; and its data info (classes, mean, std, in_channels, image_size)."""
    if not run.exists():
        raise UserError(f"{run.path} is not a run directory (no config.yaml): pass a folder under runs/")
    if run.status() == "diverged" and not run.checkpoint_path.exists():
        raise UserError(f"{run.path} diverged in its first epoch and has no checkpoint: train another run (a lower "
                        "--lr, say)")  # fmt: skip
    config = run.read_config()
    state = checkpoint.load(run.checkpoint_path)
    info = state["data"]
    model = models.build(config.model, info["in_channels"], len(info["classes"]), **config.model_options)
    checkpoint.restore(run.checkpoint_path, state, model=model)
    return model.eval(), info


def load_run(path: str | Path, device: str = "auto") -> LoadedRun:
    run = RunDir(path)
    model, info = plain_model(run)
    target = resolve_device(device)
    recorded = run.read_summary() or {}
    precision = evaluation_precision(recorded.get("precision"), target)
    size = info["image_size"]
    model = place_model(model, target, precision, (info["in_channels"], size, size)).eval()
    return LoadedRun(run, model, info, precision, target, recorded)


def evaluation_precision(trained: str | None, device: torch.device) -> Precision:
    """The precision the run trained in where this device runs it natively, so that the accuracy is the run's;
    else the device's own (bf16 emulated on a CPU without it would take an hour where fp32 takes a minute)."""
    native = resolve_precision("auto", device)
    if trained in ("fp32", native.name) or (trained == "fp16" and device.type == "cuda"):
        return resolve_precision(trained, device)
    return native


def unfinished(path: str | Path, summary: dict[str, Any]) -> str | None:
    """A note for a run that did not finish: its checkpoint is the last epoch it saved, not a finished run's."""
    status, epochs = summary.get("status"), summary.get("epochs_completed", 0)
    if status == "diverged":
        return f"{path} diverged; its checkpoint is of epoch {epochs}, its last good one"
    if status not in (None, "finished"):
        return f"{path} has not finished (status {status}); its checkpoint is of epoch {epochs}"
    return None


def run_dataset(run: RunDir, info: dict[str, Any]) -> data.Dataset:
    """The run's dataset, loaded again; refused when its classes or channels are no longer the checkpoint's (a
    folder dataset that gained or lost a class would shift every label)."""
    config = run.read_config()
    dataset = data.load(config.dataset, config.data_dir, config.download, config.image_size, info["in_channels"])
    progress.check_dataset(dataset, info, run)
    return dataset


def evaluate_run(loaded: LoadedRun, flip_tta: bool = False) -> tuple[evaluate.Evaluation, torch.Tensor]:
    """Evaluate on the run's test set (with `flip_tta`, also with flip TTA, in `.tta`) and write its single-view
    results (evaluate.write_results) into the run folder."""
    config = loaded.run.read_config()
    dataset = run_dataset(loaded.run, loaded.data)
    if flip_tta:
        evaluate.check_flip_tta(dataset, config.flip)
    images, labels = take_subset(dataset.test_images, dataset.test_labels, config.test_subset)
    result = evaluate.evaluate(loaded.model, loaded.batches(images, labels), loaded.precision, flip_tta)
    test_indices = subset_indices(len(dataset.test_labels), config.test_subset)
    evaluate.write_results(loaded.run, result, dataset.classes, images, test_indices, dataset.test_files)
    return result, evaluate.confusion_matrix(result.predictions, result.labels, len(dataset.classes))


def evaluation_lines(
    loaded: LoadedRun, result: evaluate.Evaluation, confusion: torch.Tensor, top_pairs: int
) -> list[str]:
    """What `evaluate` prints: the accuracy beside the run's own, per-class scores, the most-confused pairs and the
    files it wrote."""
    classes, path, recorded = loaded.data["classes"], loaded.run.path, loaded.recorded
    line = f"{path}: test accuracy {result.accuracy:.2f}% on {len(result.labels)} images (loss {result.loss:.4f}) "
    line += f"in {loaded.precision.name}"
    if recorded.get("final_test_acc") is not None:
        line += f" (the run recorded {recorded['final_test_acc']:.2f}% in {recorded.get('precision')})"
    if result.tta is not None:  # beside the single view, which stays the headline
        tta = result.tta
        line += f"; with flip TTA (image and mirror, softmax averaged) {tta.accuracy:.2f}% (loss {tta.loss:.4f})"
    width = max(len("class"), *(len(c) for c in classes))
    lines = [line, "per class (recall is the class's accuracy):"]
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>7}  {'F1':>7}  {'images':>6}")
    counts = confusion.tolist()
    for c, s in zip(classes, scores.per_class_scores(counts), strict=True):
        lines.append(f"{c:<{width}}  {s.precision:>8.2f}%  {s.recall:>6.2f}%  {s.f1:>6.2f}%  {s.images:>6}")
    lines.append("most confused: " + scores.format_pairs(scores.most_confused_pairs(counts, classes, top_pairs)))
    wrong = int((result.predictions != result.labels).sum())
    lines.append(f"{wrong} test images wrong; the most confidently wrong are in confidently_wrong.csv and its picture")
    files = ["confusion.csv", "per_class.csv", "confidently_wrong.csv", "plots/confusion.png"]
    files += ["plots/confidently_wrong.png"] if wrong else []
    return [*lines, "wrote " + ", ".join(str(path / f) for f in files)]


def read_images(paths: list[str], channels: int, size: int) -> torch.Tensor:
    """Image files as uint8 N×C×size×size, converted to the run's number of channels."""
    return torch.from_numpy(np.stack([read_image(Path(path), channels, size) for path in paths]))


@torch.inference_mode()
def predict(loaded: LoadedRun, paths: list[str], top: int = 3) -> list[list[tuple[str, float]]]:
    # read at the size the dataset keeps its images at, so that Batches resizes them as it did in training
    # (checkpoints from before stored_size was recorded: straight to the model's size)
    stored_size = loaded.data.get("stored_size", loaded.data["image_size"])
    images = read_images(paths, loaded.data["in_channels"], stored_size)
    classes = loaded.data["classes"]
    results = []
    for x, _ in loaded.batches(images, torch.zeros(len(images), dtype=torch.int64)):
        with loaded.precision.autocast():
            probabilities = loaded.model(x).float().softmax(1)
        values, indices = probabilities.topk(min(top, len(classes)), dim=1)
        for v, i in zip(values.tolist(), indices.tolist(), strict=True):
            results.append([(classes[k], p) for k, p in zip(i, v, strict=True)])
    return results
