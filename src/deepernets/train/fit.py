"""The training loop: read top to bottom, one path for CPU, one GPU and many (DDP under torchrun).

What it trains is built in setup.py, the run folder's state between epochs is progress.py's, and what the run
writes about itself (summary, console lines, plots) is artifacts.py's.
"""

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from deepernets import data
from deepernets.config import RunConfig
from deepernets.data.batches import DROPOUT_STREAM, epoch_seed
from deepernets.data.subset import subset_indices
from deepernets.errors import UserError
from deepernets.run import atomic, locks
from deepernets.run.folder import DONE, RunDir
from deepernets.train import artifacts, batch_norm, distributed, evaluate, progress
from deepernets.train.device import Precision, check_cuda_graphs, resolve_precision
from deepernets.train.lr_finder_run import find_lr
from deepernets.train.optimizers import set_lr
from deepernets.train.schedules import Schedule
from deepernets.train.setup import build_optimization, build_parts, check_names, wrap_for_training
from deepernets.train.step import train_step
from deepernets.train.tensorboard_log import EpochScalars

DIVERGENCE_CHECK_EVERY = 50  # steps between checks of the running loss (each check syncs with the device)


def train(
    config: RunConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    lr_finder: dict[str, Any] | None = None,
    locked: bool = False,
) -> dict[str, Any]:
    """Train one run into runs_dir/name and return its summary.

    `lr_finder` is the record of a range test run elsewhere (a study's, shared by its cells) that chose config.lr.
    The run folder is locked while it trains, so no two processes train the same run; ranks of one torchrun job
    share rank 0's lock. `locked`: the caller holds the lock already (a study's runner, until it has recorded how
    the run ended).
    """
    config.validate()
    check_names(config)
    # The name is fixed now and saved with the config: a name made from `lr: auto` must still name this run when
    # its config.yaml, which holds the LR the finder chose, is used to resume it.
    config = config.replace(name=config.name or config.default_name())
    world = distributed.init(config.device)
    run = RunDir(Path(config.runs_dir) / config.name)
    try:
        if not world.is_main or locked:
            return _train(config, run, resume, log, world, lr_finder)
        with locks.try_lock(run.lock_path) as held:
            if not held:
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
    check_cuda_graphs(config.cuda_graphs, world.device)
    config, state = progress.open_run(run, config, resume)
    distributed.barrier(world)  # every rank has checked the run folder before rank 0 writes to it
    if state is None and lr_finder_info is None and run.exists():  # a run stopped before its first checkpoint
        lr_finder_info = (run.read_summary() or {}).get("lr_finder")  # keeps its range test's record
    if state is not None and state.get("status") in DONE:
        log(f"{run.path} has already {state['status']}")
        return run.read_summary() or {}
    if world.is_main:
        atomic.remove_leftovers(run.path)
    log = artifacts.log_to_run(run, log) if world.is_main else _silent  # log.txt keeps every line the console gets

    parts = build_parts(config, world, precision, state["data"]["in_channels"] if state else None)
    model, train_batches, test_batches = parts.model, parts.train_batches, parts.test_batches
    if config.tta == "flip":
        evaluate.check_flip_tta(parts.dataset, config.flip)
    if config.lr == "auto":  # every rank runs the test on its shard (no rank idles); rank 0's answer counts
        lr_finder_info = find_lr(model, config, train_batches, precision, run.path if world.is_main else None, log)
        config = config.replace(lr=distributed.broadcast_float(lr_finder_info["suggested_lr"], world))
    opt = build_optimization(model, config, precision, len(train_batches))
    history: list[dict[str, Any]] = []
    if state is not None:
        history, lr_finder_info = progress.restore(run, state, model, opt, parts.dataset)
        log(f"resuming {run.path} after epoch {len(history)}")
    forward = wrap_for_training(model, config, world)
    info = artifacts.run_info(config, parts, precision, world, lr_finder_info)
    if world.is_main:
        run.write_config(config)
        if history:  # a resume: as the checkpoint has it (a kill between their writes leaves it an epoch short)
            run.write_metrics(history)
        run.write_summary(artifacts.summarize(config, history, "running", info))
        log(artifacts.start_line(run, config, info))

    board = EpochScalars(run.path / "tensorboard") if config.tensorboard and world.is_main else None
    status, last_eval = "finished", None
    for epoch in range(len(history), config.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch, DROPOUT_STREAM + world.rank))  # dropout: one stream per rank
        train_batches.set_epoch(epoch, size=config.train_size(epoch))
        started = time.perf_counter()
        stats = train_epoch(
            forward, opt.optimizer, opt.schedule, train_batches, precision, opt.scaler, config, epoch, world, opt.ema
        )
        train_time = time.perf_counter() - started
        if stats is None:
            status = "diverged"
            log(artifacts.diverged_line(epoch, "the loss became NaN or infinite"))
            break
        statistics_for_evaluation(model, config, train_batches, precision, world)
        last_eval = evaluate.evaluate(model, test_batches, precision, flip_tta=config.tta == "flip")
        val_loss, val_acc = distributed.reduce_eval(last_eval, world)
        if not math.isfinite(val_loss):  # the last step broke the weights: do not save them over the good ones
            status = "diverged"
            log(artifacts.diverged_line(epoch, "the test loss is NaN or infinite"))
            break
        sides = {}  # (loss, accuracy) of the optional views, reported beside the headline; they steer nothing
        if opt.ema is not None:
            statistics_for_evaluation(opt.ema.module, config, train_batches, precision, world)
            sides["ema"] = distributed.reduce_eval(evaluate.evaluate(opt.ema.module, test_batches, precision), world)
        if last_eval.tta is not None:
            sides["tta"] = distributed.reduce_eval(last_eval.tta, world)
        opt.schedule.end_epoch(val_loss)
        row = artifacts.epoch_row(epoch, stats, (val_loss, val_acc), sides, time.perf_counter() - started, train_time)
        history.append(row)
        if world.is_main:
            progress.save(run, model, opt, history, config, parts.dataset, info)
            for line in artifacts.epoch_lines(row):
                log(line)
            if board is not None:
                board.write(row)
    if board is not None:
        board.close()
    if not world.is_main:
        return {}

    if status == "finished":  # the confusion matrix and the most confidently wrong images, over the whole test set
        if world.distributed or last_eval is None:
            last_eval = evaluate.evaluate(model, parts.whole_test_set(), precision)
        test_indices = subset_indices(len(parts.dataset.test_labels), config.test_subset)
        evaluate.write_results(
            run, last_eval, parts.dataset.classes, test_batches.images, test_indices, parts.dataset.test_files
        )
    artifacts.write_plots(run, history, len(train_batches), config)
    summary = artifacts.summarize(config, history, status, info)
    run.write_summary(summary)  # last: a run is only marked finished once everything is written
    log(artifacts.final_line(summary, run))
    return summary


def statistics_for_evaluation(
    model: torch.nn.Module, config: RunConfig, batches: data.Batches, precision: Precision, world: distributed.World
) -> None:
    """Set the batch-norm statistics that every rank evaluates the model with: recomputed for its weights first
    (--precise-bn), then rank 0's on every rank."""
    if config.precise_bn:  # at the size the model is tested at, also after an epoch at --low-res
        batches.set_epoch(batches.epoch, size=config.image_size)
        batch_norm.recompute_statistics(model, batches, config.precise_bn, precision)
    distributed.sync_buffers(model, world)


def _silent(_line: str) -> None:
    pass


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
        if (i + 1) % DIVERGENCE_CHECK_EVERY == 0 and distributed.diverged(loss_sum, world):
            return None
    if distributed.diverged(loss_sum, world):
        return None
    count = torch.tensor(seen, dtype=torch.float64, device=batches.device)
    totals = distributed.sum_on_cpu(torch.stack([loss_sum, correct, count, smoothed_sum]), world)
    return {
        "loss": totals[0].item() / totals[2].item(),
        "acc": 100 * totals[1].item() / totals[2].item(),
        "images": totals[2].item(),
        "loss_smoothed": totals[3].item() / totals[2].item() if config.label_smoothing else None,
        "lr": lr,
    }


def hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions in a batch. With soft labels (mixup, CutMix) a prediction counts with the weight its
    class has in the label: picking either mixed image's class scores that image's share, as in mixup's code."""
    predicted = logits.argmax(1)
    if y.is_floating_point():
        return y.gather(1, predicted[:, None]).sum()
    return (predicted == y).sum()
