"""One GPU sitting: prove the CUDA path, measure it, and run as much of the seed study as fits, in one call.

    PYTHONPATH=src python3 benchmarks/gpu/sitting.py --data-dir gpu-data     # on the GPU machine ($OUT is used)
    PYTHONPATH=src python3 benchmarks/gpu/sitting.py --tiny                  # every step on the CPU, tiny sizes

In this order, each step starting only while time is left before the deadline (--minutes, counted from the
start), and none running past it (a stopped step takes up to 15 s more to end):

1. cuda-tests        `pytest -m cuda tests/test_cuda.py`
2. throughput        resnet20, resnet44, vgg13_bn, vgg16_bn at batch 128: our path eager, --cuda-graphs and
                     --compile against the classic PIL DataLoader (best of 0, 4, 8 workers); bf16 GEMM rate and
                     each model's share of it; peak GPU memory (deepernets.bench.throughput)
3. time-to-accuracy  resnet20 on CIFAR-10 to 91.25% and vgg16_bn to 94.0%, the epoch budgets fixed in advance,
                     evaluation in the wall time, the final epoch decides (benchmarks/time_to_accuracy.py), each
                     with the fastest variant step 2 measured for it
4. study-workers     a fixed slice of the seed study's runs as `deepernets study --jobs N` for N = 1, 2, 4 and 8
                     on the one GPU: runs finished per hour for each N
5. study             `deepernets study seed --jobs N` (or --study-grid cifar10-recipe) with the best N, CIFAR-10 first,
                     restartable (--resume-from)

Each step gets at most its cap (--caps) of the time left. Every result is written under --out (default $OUT,
else runs/sitting) as soon as its step ends: sitting.json (every step's status and result), throughput-KIND.json,
time_to_accuracy-cifar10-MODEL-KIND.json, study-KIND.json, cuda-tests.log, sitting.log (everything the steps
printed), and GRID-runs.tar.gz: the study's run folders as text files only (config.yaml, summary.json,
metrics.csv, confusion.csv, per_class.csv, log.txt, lr_finder.csv, and study.json and the LR finder's
result.json, which a report and a restart need); no checkpoints, no plots. KIND is cuda, or cpu for --tiny.
A short table is printed last.
"""

# This driver runs the steps in order within the time budget and prints the table; the rest lives beside it:
# plan.py (what runs, at what size), steps/ (one module per step), context.py (what the steps share),
# processes.py (child process groups and deadlines), workers.py (study workers on one folder), archive.py
# (GRID-runs.tar.gz), table.py (the final table).

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS.parent / "src")]  # this package (gpu), and deepernets

from deepernets.study import grid_names, load_grid  # noqa: E402
from gpu import REPO, table  # noqa: E402
from gpu.context import Sitting  # noqa: E402
from gpu.plan import STEPS, Plan, gpu_plan, tiny_plan  # noqa: E402
from gpu.steps import cuda_tests, study, study_workers, throughput, time_to_accuracy  # noqa: E402

Step = Callable[[Sitting, float], dict[str, Any]]  # (sitting, until) -> the step's entry in sitting.json


def run_step(sitting: Sitting, name: str, step: Step) -> None:
    """Run one step within its cap and the deadline (less 5 s to save), record its entry and save sitting.json.

    A step that fails is recorded as failed and the next one starts: a broken step must not cost the others.
    """
    if name == "cuda-tests" and sitting.kind != "cuda":
        why = "tiny mode runs on the CPU" if sitting.plan.device == "cpu" else "no CUDA GPU here"
        sitting.steps[name] = {"status": f"skipped: {why}", "seconds": 0}
        sitting.say(f"step {name}: skipped: {why}")
        sitting.save()
        return
    budget = min(sitting.plan.caps.get(name, 1e9), sitting.left() - 5)
    if budget <= 5:
        sitting.steps[name] = {"status": "skipped: out of time", "seconds": 0}
        sitting.stopped_at = sitting.stopped_at or f"before {name}"
        sitting.say(f"stopped here: out of time before step {name}")
        sitting.save()
        return
    sitting.say(f"step {name} (up to {budget:.0f} s)")
    started = time.monotonic()
    try:
        entry = step(sitting, min(time.monotonic() + budget, sitting.deadline - 5))
    except Exception as e:
        entry = {"status": f"failed: {type(e).__name__}: {' '.join(str(e).split())[:400]}"}
    entry["seconds"] = round(time.monotonic() - started, 1)
    sitting.steps[name] = entry
    if entry["status"].startswith(("partial", "stopped")):
        sitting.stopped_at = sitting.stopped_at or f"during {name}"
        sitting.say(f"stopped here: out of time during step {name}")
    sitting.say(f"step {name}: {entry['status']} ({entry['seconds']:.0f} s)")
    sitting.save()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="every step on the CPU with tiny sizes (for testing)")
    parser.add_argument("--out", help="where results go (default $OUT, else runs/sitting)")
    parser.add_argument("--work", help="where run folders go (default runs/sitting-work; not returned)")
    parser.add_argument("--data-dir", help="dataset root (sets DEEPERNETS_DATA for every step)")
    parser.add_argument("--minutes", type=float, help="deadline from the start (default 8.75; --tiny: 8)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"which steps, in order: {','.join(STEPS)}")
    parser.add_argument("--caps", default="", help="seconds per step at most, e.g. throughput=120,study-workers=60")
    parser.add_argument("--tta-epochs", default="", help="epoch budgets fixed in advance, e.g. resnet20=50,vgg16_bn=40")
    parser.add_argument("--workers", type=int, help="study workers on the GPU (skips the probe's choice)")
    parser.add_argument("--resume-from", help="an earlier sitting's GRID-runs.tar.gz: its finished runs are kept")
    parser.add_argument("--study-grid", choices=grid_names(), help="the study step's shipped grid (default seed)")
    parser.add_argument("--study-cuda-graphs", action="store_true",
                        help="the study's runs as CUDA graphs (deepernets study --cuda-graphs)")  # fmt: skip
    parser.add_argument("--study-datasets", help="the study step's datasets, in order (default cifar10,mnist), e.g. "
                        "mnist while CIFAR-10 is still being carried over")  # fmt: skip
    parser.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="keep the steps an earlier call recorded in --out's sitting.json (a sitting split over device calls: "
        "the steps that need no CIFAR-10 run while it is still being carried over)",
    )
    args = parser.parse_args(argv)
    args.steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(args.steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan, GPU or --tiny, with the command line's changes to it."""
    plan = tiny_plan() if args.tiny else gpu_plan()
    if args.minutes:
        plan.minutes = args.minutes
    for key, value in _pairs(args.caps):
        plan.caps[key] = float(value)
    if args.study_cuda_graphs:
        plan.study_overrides["cuda_graphs"] = True
    if args.study_grid:
        plan.study_grid = args.study_grid
    if args.study_datasets:
        plan.study_axes["dataset"] = args.study_datasets.split(",")
        lacking = set(plan.study_axes["dataset"]) - set(load_grid(plan.study_grid).axes.get("dataset", []))
        if lacking:
            sys.exit(f"--study-datasets: the grid {plan.study_grid} has no {', '.join(sorted(lacking))}")
    for key, value in _pairs(args.tta_epochs):
        for task in plan.tta:
            if task["model"] == key:
                task["epochs"] = int(value)
    return plan


def _pairs(text: str) -> list[tuple[str, str]]:
    """The key=value items of a comma-separated list such as "throughput=120,study=60", as pairs."""
    return [tuple(item.split("=")) for item in text.split(",") if item]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    out = Path(args.out or os.environ.get("OUT") or REPO / "runs" / "sitting")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or REPO / "runs" / "sitting-work")
    work.mkdir(parents=True, exist_ok=True)
    resume_from = Path(args.resume_from) if args.resume_from else None
    steps: dict[str, Step] = {
        "cuda-tests": cuda_tests.run,
        "throughput": throughput.run,
        "time-to-accuracy": time_to_accuracy.run,
        "study-workers": study_workers.run,
        "study": functools.partial(study.run, workers=args.workers, resume_from=resume_from),
    }

    sitting = Sitting(plan, out, work, args.data_dir)
    if args.continue_ and (out / "sitting.json").exists():
        earlier = json.loads((out / "sitting.json").read_text())["steps"]
        sitting.steps.update({name: entry for name, entry in earlier.items() if name not in args.steps})
    try:
        sitting.say(f"sitting on {sitting.device}, deadline {plan.minutes * 60:.0f} s, steps {', '.join(args.steps)}")
        for name in STEPS:
            if name in args.steps:
                run_step(sitting, name, steps[name])
        sitting.save()
    finally:
        sitting.close()
    summary = table.render(sitting.steps, device=sitting.device, elapsed_s=sitting.elapsed(), limit_s=plan.minutes * 60,
                           out=out, batch_size=plan.bench_batch, stopped_at=sitting.stopped_at)  # fmt: skip
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
