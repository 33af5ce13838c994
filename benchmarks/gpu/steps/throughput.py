"""Step throughput: deepernets.bench.throughput for the plan's models in a child process, stopped at the deadline.

The full result goes to throughput-KIND.json; sitting.json keeps a few short strings per model for the table and
each model's fastest variant, which the time-to-accuracy step trains with.
"""

import json
import sys
from typing import Any

from tables import share  # benchmarks/tables.py

from gpu.context import Sitting

# The child writes its result itself, so that a measurement cut short by the deadline still leaves a file.
MEASURE = (
    "import json, sys; from deepernets import bench; from deepernets.run import atomic; "
    "kwargs = json.loads(sys.argv[1]); kwargs['deadline'] = float(sys.argv[2]); "
    "atomic.write_json(sys.argv[3], bench.throughput(**kwargs))"
)


def run(sitting: Sitting, until: float) -> dict[str, Any]:
    p = sitting.plan
    path = sitting.out / f"throughput-{sitting.kind}.json"
    left_out = dict(p.left_out_variants)
    variants = list(p.variants)
    if sitting.kind != "cuda" and "cuda-graphs" in variants:
        variants.remove("cuda-graphs")
        left_out["cuda-graphs"] = "CUDA only"
    kwargs = {
        "model_names": p.models,
        "batch_size": p.bench_batch,
        "steps": p.bench_steps,
        "repeats": p.bench_repeats,
        "device": p.device,
        "variants": variants,
        "classic_workers": p.classic_workers,
        "gemm_seconds": p.gemm_seconds,
        "gemm_size": p.gemm_size,
        "parallel_compile": p.parallel_compile,
    }
    # CLOCK_MONOTONIC is one clock for every process: the child stops measuring 10 s before our deadline
    command = [sys.executable, "-c", MEASURE, json.dumps(kwargs), repr(until - 10), str(path)]
    exit_code = sitting.processes.run(command, until, sitting.log_path)
    if not path.exists():
        return {"status": "failed" if exit_code is not None else "stopped: out of time", "exit_code": exit_code}
    result = json.loads(path.read_text())
    result["not_run"] = left_out
    sitting.write(path.name, result)
    out_of_time = any(line.endswith("out of time") for line in result["left_out"])
    return {
        "status": "partial: out of time" if out_of_time else "done",
        "file": path.name,
        "models": {name: _speeds(m) for name, m in result["models"].items()},
        "fastest": {name: _fastest(m) for name, m in result["models"].items() if "fastest_variant" in m},
        "gemm_gflops": result["gemm_gflops"],
        "left_out": result["left_out"],
        "not_run": left_out,
    }


def _speeds(m: dict[str, Any]) -> dict[str, Any]:
    """One model's throughput in a few short strings for the table."""
    out: dict[str, Any] = {}
    for variant, entry in {"eager": m.get("ours"), **m.get("ours_variants", {})}.items():
        if entry:
            speed, memory = entry["images_per_s_median"], entry["peak_memory_mb"]
            out[variant] = f"{speed:.0f} ({share(entry['fraction_of_gemm'])}; {memory:.0f})"
    if "classic" in m:
        workers = m["classic"].get("num_workers", ["?"])[0]
        out["classic"] = f"{m['classic']['images_per_s_median']:.0f} ({workers})"
    if "speedup_fastest" in m:
        out["speedup"] = f"×{m['speedup_fastest']:.2f} {m['fastest_variant']}"
    out["fastest_variant"] = m.get("fastest_variant", "eager")
    return out


def _fastest(m: dict[str, Any]) -> dict[str, Any]:
    """The fastest variant of our path for one model, with its speed and its warm-up (compiling) time."""
    variant = m["fastest_variant"]
    entry = m["ours"] if variant == "eager" else m["ours_variants"][variant]
    return {"variant": variant, "images_per_s": entry["images_per_s_median"], "warmup_s": entry["warmup_s_median"]}
