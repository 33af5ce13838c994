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
    config = run.read_config()
    state = checkpoint.load(run.checkpoint_path)
    info = state["data"]
    model = models.build(config.model, info["in_channels"], len(info["classes"]), **config.model_options)
    checkpoint.restore(run.checkpoint_path, state, model=model)
    return model.eval(), info


def load_run(path: str | Path, device: str = "auto") -> LoadedRun:
    run = RunDir(path)
    model, info = plain_model(run)
    config = run.read_config()
    target = resolve_device(device)
    precision = resolve_precision("auto" if config.precision == "fp16" else config.precision, target)
    size = info["image_size"]
    model = place_model(model, target, precision, (info["in_channels"], size, size)).eval()
    return LoadedRun(run, model, info, precision, target)


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
