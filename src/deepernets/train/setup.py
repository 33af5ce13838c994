"""What a run trains, built from its config: the data and its batches, the model, and what updates the weights."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from deepernets import data, models
from deepernets.config import RunConfig
from deepernets.data.subset import take_subset
from deepernets.errors import UserError
from deepernets.train import distributed
from deepernets.train.device import Precision, place_model, resolve_precision
from deepernets.train.optimizers import build_optimizer
from deepernets.train.schedules import Schedule
from deepernets.train.step import grad_scaler


@dataclass
class Parts:
    """What a run trains on: the data, its batches on this rank and the freshly initialized model."""

    dataset: data.Dataset
    model: nn.Module
    train_batches: data.Batches
    test_batches: data.Batches
    whole_test_set: Callable[[], data.Batches]  # unsharded, for the final confusion matrix
    test_count: int


def check_names(config: RunConfig) -> None:
    """The model's and the dataset's names, which config cannot check (it imports no registry): before any file."""
    models.check(config.model, config.model_options)
    data.check_name(config.dataset)


def build_parts(
    config: RunConfig, world: distributed.World, precision: Precision, channels: int | None = None
) -> Parts:
    """`channels`: a folder dataset's, as a resumed run's checkpoint holds them (None: from its images)."""
    check_names(config)
    if not world.is_main:
        distributed.barrier(world)  # rank 0 finds (or downloads) the data first; the others then read it
    dataset = data.load(config.dataset, config.data_dir, config.download, config.image_size, channels)
    if world.is_main:
        distributed.barrier(world)
    train_x, train_y = take_subset(dataset.train_images, dataset.train_labels, config.subset)
    test_x, test_y = take_subset(dataset.test_images, dataset.test_labels, config.test_subset)
    batch_args = dict(
        mean=dataset.mean,
        std=dataset.std,
        augment=dataset.augment,
        device=world.device,
        seed=config.seed,
        size=config.image_size,
        channels_last=precision.channels_last,
    )
    shard = (world.rank, world.size)
    train_batches = data.Batches(
        train_x, train_y, config.batch_size, train=True, shard=shard, shift=config.shift, flip=config.flip,
        cutout=config.cutout, mixup=config.mixup, cutmix=config.cutmix, num_classes=dataset.num_classes, **batch_args,
    )  # fmt: skip
    if len(train_batches) == 0:
        raise UserError(
            f"{len(train_y)} training images make no whole batch of {config.batch_size} per process: "
            "lower --batch-size or raise --subset"
        )
    eval_batch = 2 * config.batch_size
    torch.manual_seed(config.seed)
    model = models.build(config.model, dataset.in_channels, dataset.num_classes, **config.model_options)
    if config.batch_size < 2 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        raise UserError(f"--batch-size 1 is too small for {config.model}: its batch norm needs at least 2 images per "
                        "step to train; use --batch-size 2 or more")  # fmt: skip
    return Parts(
        dataset=dataset,
        model=place_model(model, world.device, precision, (dataset.in_channels, config.image_size, config.image_size)),
        train_batches=train_batches,
        test_batches=data.Batches(test_x, test_y, eval_batch, shard=shard, **batch_args),
        whole_test_set=lambda: data.Batches(test_x, test_y, eval_batch, **batch_args),
        test_count=len(test_y),
    )


def build_local_parts(config: RunConfig) -> tuple[Parts, Precision]:
    """Parts and precision for one process working outside a run: the LR range test, a speed probe."""
    world = distributed.World(device=distributed.resolve_device(config.device))
    precision = resolve_precision(config.precision, world.device)
    return build_parts(config, world, precision), precision


@dataclass
class Optimization:
    """What updates the weights step by step, and is saved beside them: the optimizer, its LR schedule, the loss
    scaler (fp16 only) and the moving average of the weights (--ema only)."""

    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler | None
    ema: AveragedModel | None


def build_optimization(model: nn.Module, config: RunConfig, precision: Precision, steps_per_epoch: int) -> Optimization:
    """For a config whose LR is a number (the LR finder has replaced `auto`)."""
    return Optimization(
        optimizer=build_optimizer(model, config, float(config.lr)),
        schedule=Schedule(config, float(config.lr), steps_per_epoch),
        scaler=grad_scaler(precision),
        ema=moving_average(model, config.ema) if config.ema else None,
    )


def moving_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights and of the buffers (batch-norm statistics), so that it can be
    evaluated as it is: after each update, average = decay × average + (1 − decay) × weights; the first copies."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def wrap_for_training(model: nn.Module, config: RunConfig, world: distributed.World) -> nn.Module:
    """The model as the training steps call it: under DDP when there are several ranks, compiled when the settings
    ask. The plain model underneath holds the weights that are evaluated and saved."""
    forward = model
    if world.distributed:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[world.device] if world.device.type == "cuda" else None
        )
    if config.compile or config.cuda_graphs:  # "reduce-overhead" records CUDA graphs of forward and backward
        forward = torch.compile(forward, mode="reduce-overhead" if config.cuda_graphs else "default")
    return forward
