"""Throughput benchmarks (`deepernets bench`): our training path against the classic CIFAR pipeline, and against
the device's GEMM limit.

driver.py runs the comparison, each measurement (measure.py) in a child process (worker.py: on a CPU a fresh one
each time); pipelines.py holds the two input pipelines, gemm.py the matmul rate and the padding FLOPs, machine.py
what the results record about the machine.
"""

from deepernets.bench.driver import throughput
from deepernets.bench.machine import versions

__all__ = ["throughput", "versions"]
