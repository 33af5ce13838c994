"""Run under torchrun: join the group as a training run does and print what this process sees, as JSON."""

import json
import sys

import torch
import torch.distributed as dist

from deepernets.train import distributed

world = distributed.init(sys.argv[1] if len(sys.argv) > 1 else "cpu")
total = distributed.all_reduce_sum(torch.ones(1, device=world.device), world)
print(json.dumps({"rank": world.rank, "size": world.size, "distributed": world.distributed,
                  "backend": dist.get_backend() if dist.is_initialized() else None, "sum": total.item()}))  # fmt: skip
distributed.shutdown(world)
