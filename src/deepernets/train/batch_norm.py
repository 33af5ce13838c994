"""Batch-norm statistics recomputed for the weights as they are, before an evaluation: "precise BN" (Wu and
Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

While training, each batch-norm layer keeps a moving average of its batches' statistics (momentum 0.1: mostly the
last ten steps, each computed with different weights). Where the weights still move fast at the end (a constant
LR, a short run) that average lags behind the final weights, and the model evaluated is not the one trained.
Measured on MNIST, ResNet20, 196 steps of SGD at a constant LR of 0.02 (batch 32, fp32): 81.3% on 2,000 test
images with the running averages, 96.2% with statistics recomputed over 40 training batches.
"""

import itertools

from torch import nn
from torch.optim.swa_utils import update_bn

from deepernets.data import Batches
from deepernets.train.device import Precision


def recompute_statistics(model: nn.Module, batches: Batches, count: int, precision: Precision) -> None:
    """Replace every batch-norm layer's running statistics by their average over the first `count` training
    batches of the current epoch; the weights do not change. The batches draw their order and augmentation from
    their own per-epoch generators, so the training that follows is the same with this or without."""
    with precision.autocast():
        update_bn(itertools.islice(batches, count), model)
