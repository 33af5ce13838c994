"""What a sitting runs, and at what size: the GPU's plan and --tiny's, the only place these numbers live."""

from dataclasses import dataclass, field
from typing import Any

STEPS = ("cuda-tests", "throughput", "time-to-accuracy", "study-workers", "study")  # in the order they run


@dataclass
class Plan:
    """The sizes of every step: the GPU's, or --tiny's for a CPU."""

    device: str
    minutes: float
    caps: dict[str, float]  # seconds per step at most
    models: list[str]
    variants: list[str]
    left_out_variants: dict[str, str]  # variant -> why this plan does not time it
    classic_workers: list[int]
    parallel_compile: bool  # compile all model variants side by side first (bench.precompile)
    bench_batch: int
    bench_steps: int
    bench_repeats: int
    gemm_size: int
    gemm_seconds: float
    tta: list[dict[str, Any]]  # model, dataset, target, epochs, args
    probe_axes: dict[str, list]  # the slice of the seed grid timed for each worker count
    probe_overrides: dict[str, Any]
    worker_counts: list[int]
    study_axes: dict[str, list]  # the study grid's axes, datasets reordered (CIFAR-10 first) or cut down
    study_grid: str = "seed"  # the shipped grid the study step runs
    study_overrides: dict[str, Any] = field(default_factory=dict)
    lr_finder_steps: int | None = None
    threads: int | None = None  # CPU threads per process (OMP_NUM_THREADS); None: the machine's cores, shared


def gpu_plan() -> Plan:
    return Plan(
        device="auto",
        minutes=8.75,  # a stopped step may take 15 s more to end: the whole call stays under 9 minutes
        caps={"cuda-tests": 120, "throughput": 200, "time-to-accuracy": 200, "study-workers": 90, "study": 1e9},
        models=["resnet20", "resnet44", "vgg13_bn", "vgg16_bn"],
        variants=["eager", "cuda-graphs", "compile"],
        left_out_variants={},
        classic_workers=[0, 4, 8],
        parallel_compile=True,
        bench_batch=128,
        bench_steps=50,
        bench_repeats=1,
        gemm_size=8192,
        gemm_seconds=2.0,
        tta=[
            {"model": "resnet20", "dataset": "cifar10", "target": 91.25, "epochs": 50, "args": []},
            {"model": "vgg16_bn", "dataset": "cifar10", "target": 94.0, "epochs": 50, "args": []},  # 40 gave 93.07%
        ],
        probe_axes={
            "dataset": ["cifar10"],
            "model": ["vgg13_bn", "vgg16_bn", "resnet20", "resnet44"],
            "optimizer": ["sgd", "adam"],
            "policy": ["lr0.01"],
        },
        probe_overrides={"epochs": 1, "subset": 16384, "test_subset": 2000},
        worker_counts=[1, 2, 4, 8],
        study_axes={"dataset": ["cifar10", "mnist"]},
    )


def tiny_plan() -> Plan:
    return Plan(
        device="cpu",
        minutes=8.0,  # about 2 minutes on a shared 2-core CPU; the rest is room for a busy one
        caps={"cuda-tests": 0, "throughput": 120, "time-to-accuracy": 90, "study-workers": 120, "study": 1e9},
        models=["resnet20", "vgg11_bn"],
        variants=["eager"],
        left_out_variants={
            "cuda-graphs": "CUDA only",
            "compile": "left out in tiny mode: 30-50 s of compiling per model on a CPU",
        },
        classic_workers=[0, 2],
        parallel_compile=False,
        bench_batch=32,
        bench_steps=2,
        bench_repeats=1,
        gemm_size=256,
        gemm_seconds=0.2,
        tta=[
            {
                "model": "resnet20",
                "dataset": "mnist",
                "target": 80.0,
                "epochs": 1,
                "args": ["--subset", "1024", "--test-subset", "256"],
            }
        ],
        probe_axes={"dataset": ["mnist"], "model": ["resnet20"], "optimizer": ["sgd", "adam"], "policy": ["lr0.01"]},
        probe_overrides={"epochs": 1, "subset": 256, "test_subset": 128},
        worker_counts=[1, 2],
        study_axes={"dataset": ["mnist"], "model": ["resnet20"], "optimizer": ["sgd"]},
        study_overrides={"epochs": 1, "subset": 256, "test_subset": 128},
        lr_finder_steps=20,  # the fewest a grid may ask for (deepernets.config.LR_FINDER_MIN_STEPS)
        threads=1,  # on a busy shared CPU, two threads per process wait on each other: 20-40 times slower
    )
