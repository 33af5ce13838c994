"""`deepernets bench`: ours against classic for each model, alternated A B A B, beside the device's GEMM rates."""

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from deepernets import models
from deepernets.bench.gemm import gemm_rate, native_dtypes, padding_flops_per_image
from deepernets.bench.machine import versions
from deepernets.bench.measure import VARIANTS, WARMUP_STEPS
from deepernets.bench.worker import MeasureProcess, measure_unanswered
from deepernets.errors import UserError
from deepernets.train.device import device_description, resolve_device


def precompile(jobs: list[tuple[str, str]], batch_size: int, device: str, deadline: float | None) -> float:
    """Compile every (model, variant) at once, each in its own process, and return the seconds it took.

    Compiling takes far longer than the timed steps, and much of it runs on one core; run side by side, the
    compilations fill the on-disk caches (Inductor's FX graph and AOTAutograd caches, Triton's kernels) that
    the timed processes then reuse. Only the wall time of a sitting changes: warm-up steps, compiling
    included, are never timed.
    """
    started = time.monotonic()
    # each process's pool of compile workers gets its share of the cores, not all of them
    threads = max(2, (os.cpu_count() or 2) // max(1, len(jobs)))
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": str(threads)}
    procs = [
        measure_unanswered(
            env,
            path="ours",
            model_name=model,
            batch_size=batch_size,
            steps=1,
            workers=0,
            device_name=device,
            variant=variant,
        )
        for model, variant in jobs
    ]
    for proc in procs:
        try:
            proc.wait(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return time.monotonic() - started


def throughput(
    model_names: list[str], batch_size: int, steps: int, repeats: int, device: str = "auto",
    log: Callable[[str], None] = print,
    *, classic_workers: tuple[int, ...], variants: tuple[str, ...] = ("eager",),
    deadline: float | None = None, gemm_seconds: float = 3.0, gemm_size: int | None = None,
    parallel_compile: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Ours against classic for each model, alternated A B A B, with the GEMM rates of this device.

    `variants` beyond "eager" time our path compiled too (compiling is slow; `parallel_compile` first compiles
    them all side by side, see precompile()). At `deadline` (a time.monotonic() value) measuring stops;
    `left_out` lists what was not measured, and any measurement that failed, with why.
    """
    target = resolve_device(device)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "cuda-graphs" in variants and target.type != "cuda":
        raise UserError("--variants cuda-graphs needs a CUDA GPU: leave it out, or use --device cuda")
    gemm_size = gemm_size or (8192 if target.type == "cuda" else 4096)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "device": device_description(target),
        "versions": versions(),
        "settings": {
            "batch_size": batch_size,
            "steps": steps,
            "warmup_steps": WARMUP_STEPS["eager"],
            "warmup_steps_compiled": WARMUP_STEPS["compiled"],
            "repeats": repeats,
            "variants": ["eager", *(v for v in dict.fromkeys(variants) if v != "eager")],
            "classic_workers": list(classic_workers),
            "gemm_size": gemm_size,
            "data": "synthetic uint8 CIFAR-shaped images (3×32×32, 10 classes)",
        },  # fmt: skip
        "gemm_gflops": {},
        "models": {},
        "left_out": [],
    }
    for dtype in native_dtypes(target):  # emulated bf16 is ~100x slower: timing it says nothing and takes forever
        log(f"timing GEMM {gemm_size}² {dtype} ({gemm_seconds:.0f} s)")
        rate = gemm_rate(dtype, target, gemm_size, gemm_seconds)
        result["gemm_gflops"][str(dtype).replace("torch.", "")] = round(rate / 1e9, 1)
        log(f"GEMM {gemm_size}² {dtype}: {rate / 1e9:.0f} GFLOP/s")
    # (repeat, model, path, variant, workers). Each repeat times every variant of our path before the classic
    # pipeline, so that a deadline leaves out the baseline rather than what our path can do; repeats alternate.
    compiled = [(name, variant) for variant in result["settings"]["variants"][1:] for name in model_names]
    plan: list = ["precompile"] if compiled and parallel_compile else []
    for repeat in range(repeats):
        plan += [(repeat, name, "ours", "eager", 0) for name in model_names]
        plan += [(repeat, name, "ours", variant, 0) for name, variant in compiled]
        plan += [(repeat, name, "classic", "eager", w) for name in model_names for w in classic_workers]
    measured: dict[tuple[str, str], list[dict]] = {}  # (model, variant or "classic") -> measurements
    # Peak memory on CUDA resets in place, so there one child takes our path's measurements and another the classic
    # pipeline's (which must not inherit our path's allocator settings); on a CPU each measurement gets a fresh one.
    keep_child, last_path = target.type == "cuda", None
    with MeasureProcess() as child:
        for step, item in enumerate(plan, 1):
            if item == "precompile":
                if deadline is None or deadline > time.monotonic():
                    seconds = precompile(compiled, batch_size, device, deadline)
                    result["settings"]["parallel_compile_s"] = round(seconds, 1)
                    log(f"compiled {len(compiled)} model variants side by side in {seconds:.0f} s")
                continue
            repeat, name, path, variant, workers = item
            what = f"{name} {f'classic, {workers} workers' if path == 'classic' else variant} (repeat {repeat + 1})"
            left = None if deadline is None else deadline - time.monotonic()
            log(f"[{step}/{len(plan)}] timing {what}")
            try:
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(what, 0)
                if not keep_child or path != last_path:
                    child.close()  # a fresh child: on a CPU for every measurement, on CUDA when the path changes
                last_path = path
                r = child.measure(left, path=path, model_name=name, batch_size=batch_size, steps=steps,
                                  workers=workers, device_name=device, variant=variant)  # fmt: skip
            except subprocess.TimeoutExpired:
                result["left_out"].append(f"{what}: out of time")
                continue
            except subprocess.CalledProcessError as e:
                result["left_out"].append(f"{what}: failed ({e.stderr[:300]})")
                log(f"{what}: failed ({e.stderr[:300]})")
                continue
            measured.setdefault((name, "classic" if path == "classic" else variant), []).append(
                r | {"num_workers": workers, "repeat": repeat}
            )
    for name in model_names:
        flops = models.flops_per_image(name)
        useful = flops - padding_flops_per_image(name)
        entry: dict[str, Any] = {"forward_flops_per_image": flops, "forward_flops_without_padding": useful}
        if (name, "eager") in measured:
            entry["ours"] = summarize(measured[name, "eager"], flops, useful, result["gemm_gflops"])
        classic = measured.get((name, "classic"), [])
        if classic:  # per repeat, the best worker count
            best = [max((r for r in classic if r["repeat"] == i), key=lambda r: r["images_per_s"])
                    for i in sorted({r["repeat"] for r in classic})]  # fmt: skip
            entry["classic"] = summarize(best, flops, useful, result["gemm_gflops"])
            entry["classic"]["num_workers"] = [r["num_workers"] for r in best]
            entry["classic_by_workers"] = {
                str(w): round(statistics.median(r["images_per_s"] for r in classic if r["num_workers"] == w), 1)
                for w in classic_workers
                if any(r["num_workers"] == w for r in classic)
            }
        for variant in result["settings"]["variants"][1:]:
            if (name, variant) in measured:
                entry.setdefault("ours_variants", {})[variant] = summarize(
                    measured[name, variant], flops, useful, result["gemm_gflops"]
                )
        ours_all = {"eager": entry.get("ours"), **entry.get("ours_variants", {})}
        fastest = max((v for v in ours_all if ours_all[v]), key=lambda v: ours_all[v]["images_per_s_median"],
                      default=None)  # fmt: skip
        if fastest is not None:
            entry["fastest_variant"] = fastest
        if "classic" in entry:
            base = entry["classic"]["images_per_s_median"]
            if "ours" in entry:
                entry["speedup"] = round(entry["ours"]["images_per_s_median"] / base, 2)
            if fastest is not None:
                entry["speedup_fastest"] = round(ours_all[fastest]["images_per_s_median"] / base, 2)
        if len(entry) == 2:
            continue  # nothing measured for this model
        result["models"][name] = entry
        if "speedup" in entry:
            log(f"{name}: ours {entry['ours']['images_per_s_median']:.0f} img/s, classic "
                f"{entry['classic']['images_per_s_median']:.0f} img/s, ×{entry['speedup']}; ours reaches "
                f"{entry['ours']['fraction_of_gemm']:.0%} of the {entry['ours']['precision']} GEMM rate")  # fmt: skip
        for variant, v in entry.get("ours_variants", {}).items():
            log(f"{name} {variant}: {v['images_per_s_median']:.0f} img/s, {v['fraction_of_gemm']:.0%} of the "
                f"{v['precision']} GEMM rate (warm-up with compiling {v['warmup_s_median']:.0f} s)")  # fmt: skip
    for line in result["left_out"]:
        log(f"left out: {line}")
    return result


def summarize(rs: list[dict], flops: int, useful: int, gemm_gflops: dict[str, float]) -> dict[str, Any]:
    """Median, min and max images/s of repeated measurements, as training GFLOP/s and shares of the GEMM rate."""
    speeds = [r["images_per_s"] for r in rs]
    median = statistics.median(speeds)
    gemm = gemm_gflops["bfloat16" if rs[0]["precision"] == "bf16" else "float32"]
    return {
        "images_per_s_median": round(median, 1),
        "images_per_s_min": round(min(speeds), 1),
        "images_per_s_max": round(max(speeds), 1),
        "peak_memory_mb": round(max(r["peak_memory_bytes"] for r in rs) / 2**20, 1),
        # left allocated by the child's earlier measurements (CUDA), and not counted in the peak: ought to be 0
        "allocated_at_start_mb": round(max(r["allocated_at_start_bytes"] for r in rs) / 2**20, 1),
        "precision": rs[0]["precision"],
        "channels_last": rs[0]["channels_last"],
        "training_gflops": round(median * 3 * flops / 1e9, 1),
        "fraction_of_gemm": round(median * 3 * flops / 1e9 / gemm, 3),
        "fraction_of_gemm_without_padding": round(median * 3 * useful / 1e9 / gemm, 3),
        "warmup_s_median": round(statistics.median(r["warmup_s"] for r in rs), 2),
    }
