"""Run under torchrun: each rank writes the sample indices of its shard of one epoch to OUT/rank<R>.txt."""

import sys
from pathlib import Path

import torch

from deepernets.data import Batches
from deepernets.train import distributed

world = distributed.init("cpu")
images = torch.zeros(1000, 1, 28, 28, dtype=torch.uint8)
batches = Batches(images, torch.zeros(1000, dtype=torch.int64), 32, mean=(0.0,), std=(1.0,), train=True,
                  shard=(world.rank, world.size), seed=7)  # fmt: skip
batches.set_epoch(3)
Path(sys.argv[1], f"rank{world.rank}.txt").write_text(" ".join(map(str, batches.order().tolist())))
distributed.shutdown(world)
