"""Data-parallel helpers for runs under torchrun, and the reductions of the loop's totals over ranks; a plain process
is a world of one and takes the same path."""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from deepernets.train.device import resolve_device
from deepernets.train.evaluate import Evaluation

TIMEOUT = timedelta(minutes=10)  # a rank that stops answering ends the job instead of hanging it


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")
    group: bool = False  # joined a process group: under torchrun, even with one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1 or self.group


def under_torchrun() -> bool:
    """torchrun (torch.distributed.run) sets these for every process it starts, also with --nproc_per_node=1."""
    return all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init(device_name: str) -> World:
    """Join the process group torchrun describes in the environment, or return a world of one.

    A torchrun job of one process joins a group of one too, so it takes the multi-process path (DDP, NCCL on
    CUDA, the collectives) and `torchrun --nproc_per_node=1` on one GPU tests that path.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1 and not under_torchrun():
        return World(device=resolve_device(device_name))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), device=device, group=True)


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_float(value: float, world: World) -> float:
    """Rank 0's value on every rank."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def sync_buffers(model: torch.nn.Module, world: World) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_on_cpu(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """The sum over ranks of a tensor of totals, copied to the CPU in one transfer."""
    return all_reduce_sum(tensor, world).cpu()


def diverged(loss_sum: torch.Tensor, world: World) -> bool:
    """True on every rank as soon as any rank's running loss is NaN or infinite, so all ranks stop together."""
    bad = (~torch.isfinite(loss_sum)).to(torch.float64).reshape(1)
    return sum_on_cpu(bad, world).item() > 0


def reduce_eval(result: Evaluation, world: World) -> tuple[float, float]:
    """The loss and accuracy (percent) over every rank's shard of the test set."""
    n = len(result.labels)
    correct = (result.predictions == result.labels).sum().item()
    totals = sum_on_cpu(torch.tensor([result.loss * n, correct, n], dtype=torch.float64, device=world.device), world)
    count = max(1.0, totals[2].item())
    return totals[0].item() / count, 100 * totals[1].item() / count
