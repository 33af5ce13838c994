"""deepernets.bench for the GPU sitting: compiled variants, worker counts, and a deadline."""

import time

import pytest
import torch

from deepernets import bench
from deepernets.bench.gemm import native_dtypes
from deepernets.bench.measure import measure


def test_a_passed_deadline_leaves_every_measurement_out():
    result = bench.throughput(["resnet20"], 16, 2, 1, "cpu", log=lambda _: None, variants=("eager", "compile"),
                              classic_workers=(0, 2), deadline=time.monotonic(), gemm_seconds=0.05,
                              gemm_size=64)  # fmt: skip
    assert result["models"] == {}
    assert result["left_out"] == [  # our path's variants first: a deadline leaves out the baseline first
        "resnet20 eager (repeat 1): out of time",
        "resnet20 compile (repeat 1): out of time",
        "resnet20 classic, 0 workers (repeat 1): out of time",
        "resnet20 classic, 2 workers (repeat 1): out of time",
    ]
    native = [str(dtype).removeprefix("torch.") for dtype in native_dtypes(torch.device("cpu"))]
    assert result["settings"]["variants"] == ["eager", "compile"] and list(result["gemm_gflops"]) == native


def test_cuda_graphs_need_cuda_and_compiled_variants_need_our_path():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure("ours", "resnet20", 8, 1, 0, "cpu", "cuda-graphs")
    with pytest.raises(ValueError, match="only for our path"):
        measure("classic", "resnet20", 8, 1, 0, "cpu", "compile")


@pytest.mark.slow
def test_compiled_variant_is_timed_after_a_parallel_compile():
    """torch.compile on CPU: 30-100 s of compiling, twice (side by side first, then from the caches)."""
    result = bench.throughput(["resnet20"], 16, 2, 1, "cpu", log=lambda _: None, variants=("eager", "compile"),
                              classic_workers=(0,), gemm_seconds=0.05, gemm_size=64,
                              parallel_compile=True)  # fmt: skip
    entry = result["models"]["resnet20"]
    assert result["left_out"] == [] and result["settings"]["parallel_compile_s"] > 0
    assert entry["ours_variants"]["compile"]["images_per_s_median"] > 0
    assert entry["fastest_variant"] in ("eager", "compile") and entry["speedup_fastest"] > 0
    assert entry["classic_by_workers"].keys() == {"0"} and entry["speedup"] > 0
