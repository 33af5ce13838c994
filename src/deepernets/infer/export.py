"""Export a run's model as ONNX or TorchScript, and check that the file classifies the run's test set as the run does.

The file holds the model behind its input normalization, so it takes plain pixels: float32 N×C×S×S with values
in [0, 1] (uint8 pixels / 255; RGB channel order for 3 channels; S the run's image size, 32 unless --image-size
said otherwise), and returns logits N×classes (softmax gives probabilities). Resizing to S×S is the caller's job,
as the run's own pipeline resizes (bilinear) before normalizing: MNIST's 28×28 images become 32×32.

It is exported from a plainly built model (models.build with the checkpoint's weights, fp32, eval mode), never
from the one training runs, whose convolutions on small maps are swapped for CPU-specific classes.
"""

import importlib.util
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepernets import data
from deepernets.data.subset import take_subset
from deepernets.errors import UserError
from deepernets.infer import predict
from deepernets.run.atomic import write_atomic
from deepernets.run.folder import RunDir
from deepernets.train import evaluate
from deepernets.train.device import Precision

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the exporter needs the first two, the check the third
REQUIRED_AGREEMENT = 99.9  # percent of test images on which the file's top-1 class must equal the run's
BATCH = 256
INPUT = (
    "float32 N×{channels}×{size}×{size} pixels in [0, 1] (uint8 / 255; RGB for 3 channels), resized to {size}×{size} "
    "by the caller; output: logits N×{classes} (softmax for probabilities)"
)


class ExportMismatch(Exception):
    """The exported file classifies too many test images differently from the run's model."""


class Normalized(nn.Module):
    """The run's model behind its per-channel normalization: takes pixels in [0, 1]."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


@dataclass
class Exported:
    path: Path
    input: str  # what the file takes and returns, in words
    images: int  # test images checked
    agreement: float  # percent of them on which the file's top-1 class equals the run's
    accuracy: float  # the file's test accuracy, percent
    recorded: dict[str, Any]  # the run's summary.json, whose accuracy may differ a little (bf16, its own device)


def export_run(run_path: str | Path, fmt: str, out: str | Path | None = None, force: bool = False) -> Exported:
    """Write the run's model to `out` (default RUN/model.onnx or RUN/model.torchscript.pt) once it has passed the
    check on the run's test set; raise ExportMismatch, leaving no file, when it agrees on under 99.9% of images.
    An existing `out` other than the default is replaced only with `force`."""
    if fmt == "onnx":
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise UserError(f"--format onnx needs {', '.join(missing)}: pip install -e '.[onnx]' in the repository")
    run = RunDir(run_path)
    model, info = predict.plain_model(run)
    wrapped = Normalized(model, info["mean"], info["std"]).eval()
    size, classes = info["image_size"], info["classes"]
    described = INPUT.format(channels=info["in_channels"], size=size, classes=len(classes))
    metadata = json.dumps({"classes": classes, "input": described, "run": run.name})
    default = run.path / f"model{SUFFIXES[fmt]}"
    out = Path(out) if out else default
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name the file, such as {out / default.name}")
    if out.exists() and out.resolve() != default.resolve() and not force:
        raise UserError(f"--out {out} exists: choose another file, or pass --force to replace it")
    pixels, labels, reference = check_set(run, model, info)
    checked: dict[str, float] = {}

    def write_and_check(tmp: Path) -> None:
        example = torch.rand(2, info["in_channels"], size, size)
        (save_onnx if fmt == "onnx" else save_torchscript)(wrapped, example, tmp, metadata)
        predicted = classify(load(fmt, tmp), pixels)
        checked["agreement"] = 100.0 * (predicted == reference).double().mean().item()
        checked["accuracy"] = 100.0 * (predicted == labels).double().mean().item()
        if checked["agreement"] < REQUIRED_AGREEMENT:
            differ = int((predicted != reference).sum())
            raise ExportMismatch(
                f"the {fmt} file's top-1 class differs from the run's model on {differ} of {len(labels)} test images "
                f"({checked['agreement']:.2f}% agree, {REQUIRED_AGREEMENT}% needed); nothing was written"
            )

    write_atomic(out, write_and_check)  # the file takes its name only once it has passed the check
    return Exported(out, described, len(labels), checked["agreement"], checked["accuracy"], run.read_summary() or {})


def check_set(run: RunDir, model: nn.Module, info: dict[str, Any]) -> tuple[data.Batches, torch.Tensor, torch.Tensor]:
    """The run's test images as the exported file takes them (batches of pixels in [0, 1], resized as the run
    resizes), their labels, and the plain model's top-1 classes on them through the run's own pipeline."""
    config = run.read_config()
    dataset = predict.run_dataset(run, info)
    images, labels = take_subset(dataset.test_images, dataset.test_labels, config.test_subset)
    size, channels = info["image_size"], info["in_channels"]
    normalized = data.Batches(images, labels, BATCH, mean=tuple(info["mean"]), std=tuple(info["std"]), size=size)
    reference = evaluate.evaluate(model, normalized, Precision("fp32", False, "cpu")).predictions
    # mean 0 and std 1 leave Batches' pixels / 255, resized as above
    plain = data.Batches(images, labels, BATCH, mean=(0.0,) * channels, std=(1.0,) * channels, size=size)
    return plain, labels, reference


def save_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated", category=FutureWarning)  # see the README
        warnings.filterwarnings("ignore", message=".*deprecated", category=DeprecationWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={"deepernets.json": metadata})


def save_onnx(model: nn.Module, example: torch.Tensor, path: Path, metadata: str) -> None:
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,  # the TorchScript-based exporter is deprecated
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    program.model.metadata_props["deepernets"] = metadata
    program.save(str(path))


def load(fmt: str, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported file as a function from a batch of pixels to logits, run by its own runtime."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
        return module

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch is allowed, not every core
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


@torch.inference_mode()
def classify(model: Callable[[torch.Tensor], torch.Tensor], batches: data.Batches) -> torch.Tensor:
    return torch.cat([model(x).argmax(1) for x, _ in batches])
