"""The training loop: read top to bottom, one path for CPU, one GPU and many (DDP under torchrun)."""

import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

import deepernets
from deepernets import data, models
from deepernets.config import LR_PICKS, RunConfig
from deepernets.data.batches import DROPOUT_STREAM, epoch_seed
from deepernets.errors import UserError
from deepernets.run import locks, plots
from deepernets.run.atomic import write_text
from deepernets.run.folder import RunDir, to_csv
from deepernets.train import checkpoint, distributed, evaluate
from deepernets.train.device import Precision, device_description, place_model, resolve_precision
from deepernets.train.lr_finder import lr_range_test
from deepernets.train.optimizers import build_optimizer, set_lr
from deepernets.train.schedules import Schedule, lr_per_step
from deepernets.train.step import train_step
from deepernets.train.tensorboard_log import EpochScalars

DONE = ("finished", "diverged")  # end states: a resume leaves such a run as it is
DIVERGENCE_CHECK_EVERY = 50  # steps between checks of the running loss (each check syncs with the device)
SUBSET_SEED = 0  # subsets are drawn with a fixed seed so every run of a study sees the same images
# May change between a run and its resume, which can move to another machine.
WHERE_SETTINGS = ("data_dir", "download", "device", "compile", "cuda_graphs", "runs_dir", "tensorboard")


def train(
    config: RunConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    lr_finder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one run into runs_dir/name and return its summary.

    `lr_finder` is the record of a range test run elsewhere (a study's, shared by its cells) that chose config.lr.
    The run folder is locked while it trains, so no two processes train the same run; ranks of one torchrun job
    share rank 0's lock.
    """
    config.validate()
    # The name is fixed now and saved with the config: a name made from `lr: auto` must still name this run when
    # its config.yaml, which holds the LR the finder chose, is used to resume it.
    config = config.replace(name=config.name or config.default_name())
    world = distributed.init(config.device)
    run = RunDir(Path(config.runs_dir) / config.name)
    try:
        if not world.is_main:
            return _train(config, run, resume, log, world, lr_finder)
        with locks.try_lock(run.lock_path) as locked:
            if not locked:
                raise RunBusy(
                    f"run {run.path} is being trained by another process: wait for it, or pass another --name"
                )
            return _train(config, run, resume, log, world, lr_finder)
    finally:
        distributed.shutdown(world)


class RunBusy(UserError):
    """Another process holds the run's lock."""


def _train(
    config: RunConfig,
    run: RunDir,
    resume: bool,
    log: Callable[[str], None],
    world: distributed.World,
    lr_finder_info: dict[str, Any] | None,
) -> dict[str, Any]:
    precision = resolve_precision(config.precision, world.device)
    if config.cuda_graphs and world.device.type != "cuda":
        raise UserError("--cuda-graphs needs a CUDA GPU; on CPU leave it out")
    config, state = open_run(run, config, resume)
    distributed.barrier(world)  # every rank has checked the run folder before rank 0 writes to it
    if state is not None and state.get("status") in DONE:
        log(f"{run.path} has already {state['status']}")
        return run.read_summary() or {}
    if world.is_main:
        console = log

        def log(line: str) -> None:  # the run's log.txt keeps every line the console gets
            console(line)
            run.append_log(line)
    else:
        log = _silent  # noqa: F811

    parts = build_parts(config, world, precision)
    dataset, model, train_batches, test_batches = parts.dataset, parts.model, parts.train_batches, parts.test_batches
    if config.tta == "flip":
        evaluate.check_flip_tta(dataset)
    if config.lr == "auto":  # every rank runs the test on its shard (no rank idles); rank 0's answer counts
        lr_finder_info = find_lr(model, config, train_batches, precision, run.path if world.is_main else None, log)
        config = config.replace(lr=distributed.broadcast_float(lr_finder_info["suggested_lr"], world))
    optimizer = build_optimizer(model, config, float(config.lr))
    schedule = Schedule(config, float(config.lr), len(train_batches))
    scaler = torch.amp.GradScaler("cuda") if precision.name == "fp16" else None
    ema = moving_average(model, config.ema) if config.ema else None

    history: list[dict[str, Any]] = []
    if state is not None:
        checkpoint.restore(run.checkpoint_path, state, model=model, optimizer=optimizer, schedule=schedule)
        if ema is not None:
            checkpoint.restore(run.checkpoint_path, state, ema=ema)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        lr_finder_info = state.get("lr_finder")
        log(f"resuming {run.path} after epoch {len(history)}")
    start_epoch = len(history)

    forward = model
    if world.distributed:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[world.device] if world.device.type == "cuda" else None
        )
    if config.compile or config.cuda_graphs:  # "reduce-overhead" records CUDA graphs of forward and backward
        forward = torch.compile(forward, mode="reduce-overhead" if config.cuda_graphs else "default")

    info = {
        "parameters": models.count_parameters(model),
        "flops_per_image": models.flops_per_image(
            config.model, dataset.in_channels, dataset.num_classes, config.image_size, **config.model_options
        ),
        "device": device_description(world.device),
        "precision": precision.name,
        "channels_last": precision.channels_last,
        "world_size": world.size,
        "train_images": len(train_batches.labels),
        "test_images": parts.test_count,
        "dataset_location": dataset.location,
        "lr_finder": lr_finder_info,
    }
    if world.is_main:
        run.write_config(config)
        run.write_summary(summarize(config, history, "running", info))
        log(
            f"run {run.path}: {config.model} on {config.dataset} "
            f"({info['train_images']} train / {info['test_images']} test images), "
            f"{info['parameters']:,} parameters, {info['device']}, {precision.name}"
        )

    board = EpochScalars(run.path / "tensorboard") if config.tensorboard and world.is_main else None
    status, last_eval = "finished", None
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch, DROPOUT_STREAM + world.rank))  # dropout: one stream per rank
        train_batches.set_epoch(epoch)
        started = time.perf_counter()
        stats = train_epoch(forward, optimizer, schedule, train_batches, precision, scaler, config, epoch, world, ema)
        train_time = time.perf_counter() - started
        if stats is None:
            status = "diverged"
            log(
                f"Epoch: {epoch + 1:02} | the loss became NaN or infinite: the run diverged; "
                f"the checkpoint after epoch {epoch} is kept"
            )
            break
        distributed.sync_buffers(model, world)  # every rank evaluates with rank 0's batch-norm statistics
        last_eval = evaluate.evaluate(model, test_batches, precision, flip_tta=config.tta == "flip")
        val_loss, val_acc = reduce_eval(last_eval, world)
        if not math.isfinite(val_loss):  # the last step broke the weights: do not save them over the good ones
            status = "diverged"
            log(f"Epoch: {epoch + 1:02} | the test loss is NaN or infinite: the run diverged; "
                f"the checkpoint after epoch {epoch} is kept")  # fmt: skip
            break
        sides = {}  # (loss, accuracy) of the optional views, reported beside the headline; they steer nothing
        if ema is not None:
            distributed.sync_buffers(ema.module, world)
            sides["ema"] = reduce_eval(evaluate.evaluate(ema.module, test_batches, precision), world)
        if last_eval.tta is not None:
            sides["tta"] = reduce_eval(last_eval.tta, world)
        schedule.end_epoch(val_loss)
        epoch_time = time.perf_counter() - started
        row = {
            "epoch": epoch + 1,
            "lr": stats["lr"],
            "train_loss": round(stats["loss"], 6),
            "train_loss_smoothed": None if stats["loss_smoothed"] is None else round(stats["loss_smoothed"], 6),
            "train_acc": round(stats["acc"], 4),
            "val_loss": round(val_loss, 6),
            "val_acc": round(val_acc, 4),
            **{f"{key}_val_loss": round(loss, 6) for key, (loss, _) in sides.items()},
            **{f"{key}_val_acc": round(acc, 4) for key, (_, acc) in sides.items()},
            "epoch_time_s": round(epoch_time, 3),
            "train_images_per_s": round(stats["images"] / train_time, 1),
            "timestamp": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        history.append(row)
        if world.is_main:
            save_progress(run, model, ema, optimizer, schedule, scaler, history, config, dataset, info, lr_finder_info)
            for line in epoch_lines(row):
                log(line)
            if board is not None:
                board.write(row)
    if board is not None:
        board.close()

    if world.is_main:
        if status == "finished":
            if world.distributed or last_eval is None:
                last_eval = evaluate.evaluate(model, parts.whole_test_set(), precision)
            test_indices = subset_indices(len(dataset.test_labels), config.test_subset)
            evaluate.write_results(run, last_eval, dataset.classes, parts.test_batches.images, test_indices)
        write_plots(run, history, len(train_batches), config)
        summary = summarize(config, history, status, info)
        run.write_summary(summary)  # last: a run is only marked finished once everything is written
        log(final_line(summary, run))
        return summary
    return {}


@dataclass
class Parts:
    """What a run trains on: the data, its batches on this rank and the freshly initialized model."""

    dataset: data.Dataset
    model: torch.nn.Module
    train_batches: data.Batches
    test_batches: data.Batches
    whole_test_set: Callable[[], data.Batches]  # unsharded, for the final confusion matrix
    test_count: int


def build_parts(config: RunConfig, world: distributed.World, precision: Precision) -> Parts:
    if not world.is_main:
        distributed.barrier(world)  # rank 0 finds (or downloads) the data first; the others then read it
    dataset = data.load(config.dataset, config.data_dir, config.download, config.image_size)
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
        train_x, train_y, config.batch_size, train=True, shard=shard, cutout=config.cutout, mixup=config.mixup,
        cutmix=config.cutmix, num_classes=dataset.num_classes, **batch_args,
    )  # fmt: skip
    if len(train_batches) == 0:
        raise UserError(
            f"{len(train_y)} training images make no whole batch of {config.batch_size} per process: "
            "lower --batch-size or raise --subset"
        )
    eval_batch = 2 * config.batch_size
    torch.manual_seed(config.seed)
    model = models.build(config.model, dataset.in_channels, dataset.num_classes, **config.model_options)
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


def _silent(_line: str) -> None:
    pass


def open_run(run: RunDir, config: RunConfig, resume: bool) -> tuple[RunConfig, dict[str, Any] | None]:
    """Check the run directory before anything is written to it; return the config and checkpoint to resume."""
    if not run.exists():
        return config, None
    if not resume:
        raise UserError(f"run {run.path} already exists: pass --resume to continue it, or --name to start another")
    saved = run.read_config()
    if config.lr == "auto":
        config = config.replace(lr=saved.lr)
    differences = [k for k, v in config.to_dict().items() if saved.to_dict()[k] != v and k not in WHERE_SETTINGS]
    if differences:
        raise UserError(
            f"--resume: settings differ from {run.config_path} in {', '.join(differences)}; "
            "resume with the saved settings (--config) or pass --name to start another run"
        )
    saved = saved.replace(**{k: getattr(config, k) for k in WHERE_SETTINGS})
    status = (run.read_summary() or {}).get("status")
    if status in DONE:
        return saved, {"status": status}
    if not run.checkpoint_path.exists():
        return saved, None
    return saved, checkpoint.load(run.checkpoint_path)


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


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    batches: data.Batches,
    precision: Precision,
    scaler: torch.amp.GradScaler | None,
    config: RunConfig,
    epoch: int,
    world: distributed.World,
    ema: AveragedModel | None = None,
) -> dict[str, float] | None:
    """One pass over the training batches; None when the loss became NaN or infinite.

    `ema`, when given, averages the weights after every step. Batches with soft labels (mixup, CutMix) log the
    cross-entropy against those labels and count as correct the labels' weight on the predicted class.
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    smoothed_sum = torch.zeros((), dtype=torch.float64, device=batches.device)
    correct = torch.zeros((), dtype=torch.float64, device=batches.device)
    seen, step, lr = 0, epoch * len(batches), 0.0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not (sys.stderr.isatty() and world.is_main))
    for i, (x, y) in enumerate(bar):
        lr = schedule.lr(step)
        set_lr(optimizer, lr)
        if config.cuda_graphs:  # the previous step's graph outputs are consumed: its memory may be reused
            torch.compiler.cudagraph_mark_step_begin()
        loss, logits = train_step(model, optimizer, x, y, precision, scaler, config.label_smoothing)
        if ema is not None:  # a DDP or compiled wrapper yields the plain model's parameters and buffers, in order
            ema.update_parameters(model)
        if config.label_smoothing:  # log plain cross-entropy, comparable with the test loss; the trained one beside
            smoothed_sum += loss * len(y)
            loss = F.cross_entropy(logits.float(), y)
        loss_sum += loss * len(y)
        correct += hits(logits, y)
        seen += len(y)
        step += 1
        if (i + 1) % DIVERGENCE_CHECK_EVERY == 0 and diverged(loss_sum, world):
            return None
    if diverged(loss_sum, world):
        return None
    count = torch.tensor(seen, dtype=torch.float64, device=batches.device)
    totals = all_reduce(torch.stack([loss_sum, correct, count, smoothed_sum]), world)
    return {
        "loss": totals[0].item() / totals[2].item(),
        "acc": 100 * totals[1].item() / totals[2].item(),
        "images": totals[2].item(),
        "loss_smoothed": totals[3].item() / totals[2].item() if config.label_smoothing else None,
        "lr": lr,
    }


def moving_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights and of the buffers (batch-norm statistics), so that it can be
    evaluated as it is: after each update, average = decay × average + (1 − decay) × weights; the first copies."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions in a batch. With soft labels (mixup, CutMix) a prediction counts with the weight its
    class has in the label: picking either mixed image's class scores that image's share, as in mixup's code."""
    predicted = logits.argmax(1)
    if y.is_floating_point():
        return y.gather(1, predicted[:, None]).sum()
    return (predicted == y).sum()


def diverged(loss_sum: torch.Tensor, world: distributed.World) -> bool:
    """True on every rank as soon as any rank's running loss is NaN or infinite, so all ranks stop together."""
    bad = (~torch.isfinite(loss_sum)).to(torch.float64).reshape(1)
    return all_reduce(bad, world).item() > 0


def all_reduce(tensor: torch.Tensor, world: distributed.World) -> torch.Tensor:
    return distributed.all_reduce_sum(tensor, world).cpu()


def reduce_eval(result: evaluate.Evaluation, world: distributed.World) -> tuple[float, float]:
    n = len(result.labels)
    correct = (result.predictions == result.labels).sum().item()
    totals = all_reduce(torch.tensor([result.loss * n, correct, n], dtype=torch.float64, device=world.device), world)
    count = max(1.0, totals[2].item())
    return totals[0].item() / count, 100 * totals[1].item() / count


def find_lr(
    model: torch.nn.Module,
    config: RunConfig,
    batches: data.Batches,
    precision: Precision,
    out: Path | None,
    log: Callable[[str], None],
    **test_options: Any,
) -> dict[str, Any]:
    """Run the LR range test, write its history CSV and plot into `out` (if given), and return what it chose.

    It never fails for want of a usable curve: it then falls back (see lr_finder.LRFinderResult.choose) and warns,
    so every rank of a torchrun job comes back with an answer.
    """
    probe = build_optimizer(model, config, 1e-7)
    result = lr_range_test(model, probe, batches, precision, **test_options)
    choice = result.choose(config.lr_pick, config.optimizer)
    if out is not None:
        write_text(out / "lr_finder.csv", to_csv(result.rows(), ["step", "lr", "loss", "smoothed_loss"]))
        title = f"LR range test: {config.model} on {config.dataset} ({config.optimizer})"
        label = choice.picked_by + (", fallback" if choice.fallback else "")
        plots.lr_finder_curve(
            result.lrs, result.raw_losses, result.losses, result.threshold, (choice.lr, label),
            out / "plots" / "lr_finder.png", title,
        )  # fmt: skip
    log(
        f"LR finder: valley {result.valley:.3g}, steep {result.steep:.3g}, minimum/10 {result.minimum_tenth:.3g}, "
        f"minimum {result.minimum:.3g}; using {choice.lr:.3g} ({choice.picked_by})"
    )
    if choice.warning:
        log(f"warning: {choice.warning}")
    return {
        "suggested_lr": choice.lr,
        "method": config.lr_pick,
        "picked_by": choice.picked_by,
        "fallback": choice.fallback,
        "warning": choice.warning,
        **{method: getattr(result, method) for method in LR_PICKS},
        "points": len(result.lrs),
    }


def save_progress(run, model, ema, optimizer, schedule, scaler, history, config, dataset, info, lr_finder_info) -> None:  # noqa: ANN001, E501
    checkpoint.save(
        run.checkpoint_path,
        {
            "epoch": len(history),
            "model": model.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "history": history,
            "config": config.to_dict(),
            "lr_finder": lr_finder_info,
            "data": {
                "classes": dataset.classes,
                "mean": list(dataset.mean),
                "std": list(dataset.std),
                "in_channels": dataset.in_channels,
                "image_size": config.image_size,
            },
        },
    )
    run.write_metrics(history)
    run.write_summary(summarize(config, history, "running", info))


def summarize(config: RunConfig, history: list[dict[str, Any]], status: str, info: dict[str, Any]) -> dict[str, Any]:
    last = history[-1] if history else None
    best = max(history, key=lambda r: r["val_acc"]) if history else None
    train_time = sum(r["epoch_time_s"] for r in history)
    return {
        "status": status,
        "name": config.name or config.default_name(),
        "model": config.model,
        "dataset": config.dataset,
        "optimizer": config.optimizer,
        "schedule": config.schedule,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_completed": len(history),
        "final_test_acc": last["val_acc"] if last and status == "finished" else None,
        "final_test_loss": last["val_loss"] if last and status == "finished" else None,
        "final_train_acc": last["train_acc"] if last and status == "finished" else None,
        "best_epoch_test_acc": {"acc": best["val_acc"], "epoch": best["epoch"]} if best else None,
        **side_results(config, last if status == "finished" else None),
        "wall_time_s": round(train_time, 2),
        "train_images_per_s": round(sorted(r["train_images_per_s"] for r in history)[len(history) // 2], 1)
        if history
        else None,
        **info,
        "versions": {
            "deepernets": deepernets.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
        },
    }


def side_results(config: RunConfig, last: dict[str, Any] | None) -> dict[str, Any]:
    """The final accuracies of the optional views, each labelled; only for the features that are on. The headline,
    final_test_acc, stays the trained weights' single-view accuracy."""
    results: dict[str, Any] = {}
    if config.ema:
        weights = f"exponential moving average of the weights, decay {config.ema}"
        results["final_ema_test_acc"] = {"acc": last["ema_val_acc"], "weights": weights} if last else None
    if config.tta == "flip":
        views = "each image and its horizontal mirror, softmax averaged"
        results["final_tta_test_acc"] = {"acc": last["tta_val_acc"], "views": views} if last else None
    return results


def write_plots(run: RunDir, history: list[dict[str, Any]], steps_per_epoch: int, config: RunConfig) -> None:
    if history:
        plots.training_curves(history, run.plots / "curves.png", run.name)
    lrs = lr_per_step(config, steps_per_epoch, history)
    plots.lr_schedule(lrs, steps_per_epoch, run.plots / "lr_schedule.png", f"LR schedule: {config.schedule}")


def epoch_lines(row: dict[str, Any]) -> list[str]:
    minutes, seconds = divmod(int(round(row["epoch_time_s"])), 60)
    smoothed = row.get("train_loss_smoothed")
    return [
        f"Epoch: {row['epoch']:02} | Epoch Time: {minutes}m {seconds}s | Timestamp: {row['timestamp']}",
        f"\tTrain Loss: {row['train_loss']:.3f} | Train Acc: {row['train_acc']:.2f}%"
        + (f" | with label smoothing: {smoothed:.3f}" if smoothed is not None else ""),
        f"\t Val. Loss: {row['val_loss']:.3f} |  Val. Acc: {row['val_acc']:.2f}%",
    ] + [
        f"\t {label} Loss: {row[f'{key}_val_loss']:.3f} |  {label} Acc: {row[f'{key}_val_acc']:.2f}% ({what})"
        for key, label, what in SIDE_VIEWS
        if row.get(f"{key}_val_acc") is not None
    ]


SIDE_VIEWS = [("ema", " EMA", "moving average of the weights"), ("tta", " TTA", "image and mirror, softmax averaged")]


def final_line(summary: dict[str, Any], run: RunDir) -> str:
    if summary["status"] == "diverged":
        return f"diverged after {summary['epochs_completed']} good epoch(s); results in {run.path}"
    sides = [f"{name} {summary[key]['acc']:.2f}%" for key, name in FINAL_SIDE_RESULTS if summary.get(key)]
    return (
        f"final test accuracy {summary['final_test_acc']:.2f}% after {summary['epochs_completed']} epochs "
        f"({summary['train_images_per_s']} train images/s)"
        + (f"; beside it: {', '.join(sides)}" if sides else "")
        + f"; results in {run.path}"
    )


FINAL_SIDE_RESULTS = [("final_ema_test_acc", "EMA weights"), ("final_tta_test_acc", "with flip TTA")]


def measure_speed(parts: Parts, config: RunConfig, precision: Precision, steps: int = 6, warmup: int = 2) -> float:
    """Training images/s over a few real steps (augmentation included), after `warmup` untimed steps.

    The model's and optimizer's state are left changed: this only measures.
    """
    optimizer = build_optimizer(parts.model, config, 1e-9)
    parts.model.train()
    stream = parts.train_batches.forever()
    for _ in range(warmup):
        train_step(parts.model, optimizer, *next(stream), precision)[0].item()
    started, images = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(stream)
        loss, _ = train_step(parts.model, optimizer, x, y, precision)
        images += len(y)
    loss.item()  # waits for the device to finish
    return images / (time.perf_counter() - started)
