"""Print the README's speed tables (Markdown) from the JSON files in benchmarks/results/.

python benchmarks/tables.py
"""

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def speed(entry: dict) -> str:
    return f"{entry['images_per_s_median']:.0f} ({entry['images_per_s_min']:.0f}–{entry['images_per_s_max']:.0f})"


def share(fraction: float) -> str:
    """A share of a GEMM rate: one decimal under 10%, where a GPU's small models sit (0.5%, not 0%)."""
    return f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"


def on_gpu(result: dict) -> bool:
    return not result["device"].startswith("CPU")


def throughput_table(result: dict) -> str:
    gemm = result["gemm_gflops"]
    rates = ", ".join(f"{rate:.0f} GFLOP/s {'fp32' if dtype == 'float32' else 'bf16'}" for dtype, rate in gemm.items())
    cpu = None if on_gpu(result) else result["versions"].get("cpu")  # on a GPU machine the host CPU is beside the point
    where = f"{cpu['model']} ({', '.join(cpu['isa_flags'])}); {result['device']}" if cpu else result["device"]
    limits = " ".join(f"{k}={v}" for k, v in cpu["kernel_limits"].items()) if cpu else ""
    ours_precision = next(iter(result["models"].values()))["ours"]["precision"]
    size = result["settings"].get("gemm_size", 4096)
    memory = "peak GPU memory" if on_gpu(result) else "peak RSS"
    lines = [
        f"Device: {where}{f', kernels limited by {limits}' if limits else ''}; GEMM {size}²: "
        f"{rates}. Batch {result['settings']['batch_size']}, medians of {result['settings']['repeats']} "
        "alternations (min–max in brackets).",
        "",
        f"| model | ours img/s | classic img/s | speed-up | ours: training GFLOP/s (share of {ours_precision} GEMM) "
        f"| ours: share without padding FLOPs | classic: GFLOP/s (share of fp32 GEMM) | {memory} ours / classic (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["models"].items():
        classic = m["classic"]
        # eager first, then each compiled variant timed (`deepernets bench --variants`), against the same baseline
        for variant, ours in {"eager": m["ours"], **m.get("ours_variants", {})}.items():
            lines.append(
                f"| {name}{'' if variant == 'eager' else f' ({variant})'} | {speed(ours)} | {speed(classic)} "
                f"| ×{ours['images_per_s_median'] / classic['images_per_s_median']:.2f} "
                f"| {ours['training_gflops']:.0f} ({share(ours['fraction_of_gemm'])}) "
                f"| {share(ours['fraction_of_gemm_without_padding'])} "
                f"| {classic['training_gflops']:.0f} ({share(classic['fraction_of_gemm'])}) "
                f"| {ours['peak_memory_mb']:.0f} / {classic['peak_memory_mb']:.0f} |"
            )
    return "\n".join(lines)


def variant(settings: dict) -> str:
    """The flags a run had beyond its preset, as " (`--low-res 24 ...`)"; nothing for the preset alone."""
    extra = settings.get("extra_args") or []
    return f" (`{' '.join(extra)}`)" if extra else ""


def cpu_numbers(result: dict) -> str:
    """ ", family 25 model 17": what tells apart CPUs that a VM names alike (JSON of older versions lacks it)."""
    cpu = result.get("versions", {}).get("cpu", {})
    on_cpu = result["device"].startswith("CPU")  # a GPU's row names the GPU, not the host's CPU
    return f", family {cpu['family']} model {cpu['model_number']}" if on_cpu and cpu.get("family") else ""


def time_to_accuracy_table(results: list[dict]) -> str:
    lines = [
        "| task | device | epochs (fixed) | final test acc | target | reached | wall time "
        "| first epoch at target (not used) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["settings"]
        lines.append(
            f"| {s['model']} on {s['dataset']}{variant(s)} | {r['device']}{cpu_numbers(r)} | {s['epochs']} "
            f"| {r['final_test_acc']:.2f}% "
            f"| {s['target']}% "
            f"| {'yes' if r['reached'] else 'no'} | {r['wall_time_s'] / 60:.1f} min "
            f"| {r['first_epoch_at_target (not used to stop)'] or '—'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sorted(RESULTS.glob("throughput-*.json")):
        print(f"### {path.name}\n\n{throughput_table(json.loads(path.read_text()))}\n")
    tta = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("time_to_accuracy-*.json"))]
    if tta:
        print(f"### time to accuracy\n\n{time_to_accuracy_table(tta)}\n")
