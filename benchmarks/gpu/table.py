"""The short table a sitting prints last: one row per step that ran, then each model's throughput."""

from pathlib import Path
from typing import Any

from gpu.plan import STEPS


def render(
    steps: dict[str, dict[str, Any]],
    *,
    device: str,
    elapsed_s: float,
    limit_s: float,
    out: Path,
    batch_size: int,
    stopped_at: str | None,
) -> str:
    lines = [
        f"GPU sitting on {device}: {elapsed_s:.0f} s of {limit_s:.0f} s; results in {out}",
        f"{'step':<17} {'status':<8} {'time':>6}  result",
    ]
    for name in STEPS:
        entry = steps.get(name)
        if entry is None:
            continue
        status, _, why = entry["status"].partition(": ")
        result = BRIEF[name](entry)
        if why and why not in result:
            result = f"{why}; {result}" if result else why
        lines.append(f"{name:<17} {status:<8} {entry['seconds']:>5.0f}s  {result}")
    models = steps.get("throughput", {}).get("models", {})
    if models:
        lines.append(f"throughput, images/s at batch {batch_size} (share of the bf16 GEMM rate; peak MB):")
        variants = [v for v in ("eager", "cuda-graphs", "compile") if any(v in m for m in models.values())]
        header = "".join(f" {v:>22}" for v in variants)
        lines.append(f"  {'model':<9}{header} {'classic (workers)':>20} {'fastest ×':>10}")
        for name, m in models.items():
            cells = "".join(f" {m[v] if v in m else '-':>22}" for v in variants)
            lines.append(f"  {name:<9}{cells} {m.get('classic', '-'):>20} {m.get('speedup', '-'):>10}")
    lines.append(f"stopped here: out of time {stopped_at}" if stopped_at else "every step ran to its end")
    return "\n".join(lines)


def _cuda_tests(entry: dict[str, Any]) -> str:
    if "counts" not in entry:
        return ""
    counts = entry["counts"] or {}
    if not counts:  # stopped before pytest's summary: count the outcomes it printed
        for outcome in entry["tests"].values():
            counts[outcome.lower()] = counts.get(outcome.lower(), 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "no test finished"


def _throughput(entry: dict[str, Any]) -> str:
    if "models" not in entry:
        return ""
    bf16 = entry.get("gemm_gflops", {}).get("bfloat16")
    measured = f"{len(entry['models'])} model(s) measured, {len(entry['left_out'])} measurement(s) left out"
    return f"{measured}; bf16 GEMM {bf16:.0f} GFLOP/s" if bf16 else measured


def _time_to_accuracy(entry: dict[str, Any]) -> str:
    parts = []
    for t in entry.get("tasks", []):
        if t["status"] == "done":
            verdict = "reached" if t["reached"] else "not reached"
            parts.append(
                f"{t['task']} {t['final_test_acc']:.2f}% ({verdict} {t['target']}%) "
                f"in {t['wall_time_s']:.0f} s, {t['epochs']} ep, {t['variant']}"
            )
        else:
            parts.append(f"{t['task']} {t['status']}")
    return "; ".join(parts)


def _study_workers(entry: dict[str, Any]) -> str:
    if "trials" not in entry:
        return ""
    rates = " ".join(f"{t['workers']}:{t['runs_per_hour']:.0f}" for t in entry["trials"] if "runs_per_hour" in t)
    return f"runs/h by workers {rates}; best {entry['best_workers']}"


def _study(entry: dict[str, Any]) -> str:
    if "planned_runs" not in entry:
        return ""
    lost = len(entry["in_progress_when_stopped"])
    return (
        f"{entry['finished_runs']} of {entry['planned_runs']} runs finished with {entry['workers']} "
        f"worker(s) ({lost} stopped mid-run); {entry['archive']}"
    )


# Each step's result in a few words (empty when the step left none, such as a skipped or failed step)
BRIEF = {
    "cuda-tests": _cuda_tests,
    "throughput": _throughput,
    "time-to-accuracy": _time_to_accuracy,
    "study-workers": _study_workers,
    "study": _study,
}
