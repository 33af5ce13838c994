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
4. study-workers     a fixed slice of the seed study's runs with 1, 2, 4 and 8 `deepernets study --shard i/N`
                     workers on the one GPU: runs finished per hour for each N
5. study             `deepernets study seed` with the best N, CIFAR-10 first, restartable (--resume-from)

Each step gets at most its cap (--caps) of the time left. Every result is written under --out (default $OUT,
else runs/sitting) as soon as its step ends: sitting.json (every step's status and result), throughput-KIND.json,
time_to_accuracy-cifar10-MODEL-KIND.json, study-KIND.json, cuda-tests.log, sitting.log (everything the steps
printed), and study-runs.tar.gz: the study's run folders as text files only (config.yaml, summary.json,
metrics.csv, confusion.csv, per_class.csv, log.txt, lr_finder.csv, and study.json and the LR finder's
result.json, which a report and a restart need); no checkpoints, no plots. KIND is cuda, or cpu for --tiny.
A short table is printed last.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import yaml  # noqa: E402

from deepernets import study  # noqa: E402
from deepernets.run import atomic  # noqa: E402

STEPS = ("cuda-tests", "throughput", "time-to-accuracy", "study-workers", "study")
ARCHIVED = {
    "config.yaml",
    "summary.json",
    "metrics.csv",
    "confusion.csv",
    "per_class.csv",
    "log.txt",
    "lr_finder.csv",
    "study.json",
    "result.json",
}
VARIANT_FLAGS = {"eager": [], "compile": ["--compile"], "cuda-graphs": ["--cuda-graphs"]}
FULL = {"cifar10": 50_000, "mnist": 60_000}  # training images
GRACE_S = 15  # after SIGINT at a deadline, how long a process group may take to stop before SIGKILL


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
    study_axes: dict[str, list]  # the seed grid's axes, datasets reordered (CIFAR-10 first) or cut down
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
            {"model": "vgg16_bn", "dataset": "cifar10", "target": 94.0, "epochs": 40, "args": []},
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
        lr_finder_steps=10,
        threads=1,  # on a busy shared CPU, two threads per process wait on each other: 20-40 times slower
    )


class Sitting:
    def __init__(self, plan: Plan, out: Path, work: Path, data_dir: str | None) -> None:
        self.plan, self.out, self.work = plan, out, work
        self.started = time.monotonic()
        self.deadline = self.started + plan.minutes * 60
        python_path = [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path), "PYTHONUNBUFFERED": "1"}
        if data_dir:
            self.env["DEEPERNETS_DATA"] = str(Path(data_dir).resolve())
        if plan.threads:
            self.env["OMP_NUM_THREADS"] = str(plan.threads)
        os.environ.update(self.env)  # for the children started through other modules (time_to_accuracy)
        self.device, self.kind = self.find_device()
        self.log_file = (out / "sitting.log").open("a", buffering=1)
        self.steps: dict[str, dict[str, Any]] = {}
        self.stopped_at: str | None = None
        self.groups: list[subprocess.Popen] = []

    def find_device(self) -> tuple[str, str]:
        """The device's name and kind, asked in a subprocess so that this one holds no CUDA context."""
        code = (
            "from deepernets.train.device import device_description, resolve_device; "
            f"d = resolve_device({self.plan.device!r}); print(d.type); print(device_description(d))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, check=True)
        kind, name = out.stdout.strip().splitlines()[-2:]
        return name, kind

    # -- time and output --------------------------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, line: str) -> None:
        stamped = f"[{time.monotonic() - self.started:6.1f} s] {line}"
        print(stamped, flush=True)
        self.log_file.write(stamped + "\n")

    def write(self, name: str, value: Any) -> Path:
        path = self.out / name
        atomic.write_json(path, value)
        return path

    def save(self) -> None:
        self.write("sitting.json", self.summary())

    def summary(self) -> dict[str, Any]:
        from deepernets import bench

        return {
            "sitting": "benchmarks/gpu/sitting.py",
            "device": self.device,
            "versions": bench.versions(),
            "minutes": self.plan.minutes,
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "stopped_at": self.stopped_at,
            "plan": dataclasses.asdict(self.plan),
            "steps": self.steps,
        }

    # -- processes --------------------------------------------------------------------------------------------

    def run(
        self, command: list[str], timeout: float, log: Path | None = None, **popen: Any
    ) -> tuple[int | None, float]:
        """Run a command in its own process group, output to `log` (default sitting.log); None if out of time."""
        started = time.monotonic()
        with open(log or self.out / "sitting.log", "a") as output:
            output.write(f"$ {' '.join(command)}\n")
            output.flush()
            proc = subprocess.Popen(
                command,
                cwd=popen.pop("cwd", REPO),
                env=popen.pop("env", self.env),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
            self.groups.append(proc)
            try:
                code: int | None = proc.wait(timeout=max(timeout, 0.1))
            except subprocess.TimeoutExpired:
                self.stop([proc])
                code = None
        return code, time.monotonic() - started

    def stop(self, procs: list[subprocess.Popen]) -> None:
        """SIGINT each process group (pytest and deepernets stop cleanly on it), then SIGKILL what is left."""
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGINT)
        end = time.monotonic() + GRACE_S
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the group still holds: workers, compilers
            proc.wait()

    def close(self) -> None:
        self.stop([p for p in self.groups if p.poll() is None])
        self.log_file.close()

    # -- steps ------------------------------------------------------------------------------------------------

    def step(self, name: str, function: Any, *args: Any) -> None:
        if name == "cuda-tests" and self.kind != "cuda":
            why = "tiny mode runs on the CPU" if self.plan.device == "cpu" else "no CUDA GPU here"
            self.steps[name] = {"status": f"skipped: {why}", "seconds": 0}
            self.say(f"step {name}: skipped: {why}")
            self.save()
            return
        cap = self.plan.caps.get(name, 1e9)
        budget = min(cap, self.left() - 5)
        if budget <= 5:
            self.steps[name] = {"status": "skipped: out of time", "seconds": 0}
            self.stopped_at = self.stopped_at or f"before {name}"
            self.say(f"stopped here: out of time before step {name}")
            self.save()
            return
        self.say(f"step {name} (up to {budget:.0f} s)")
        started = time.monotonic()
        try:
            entry = function(min(time.monotonic() + budget, self.deadline - 5), *args)
        except Exception as e:  # noqa: BLE001  (a broken step must not cost the steps after it)
            entry = {"status": f"failed: {type(e).__name__}: {' '.join(str(e).split())[:400]}"}
        entry["seconds"] = round(time.monotonic() - started, 1)
        self.steps[name] = entry
        if entry["status"].startswith("partial") or entry["status"].startswith("stopped"):
            self.stopped_at = self.stopped_at or f"during {name}"
            self.say(f"stopped here: out of time during step {name}")
        self.say(f"step {name}: {entry['status']} ({entry['seconds']:.0f} s)")
        self.save()

    def cuda_tests(self, until: float) -> dict[str, Any]:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-m",
            "cuda",
            "tests/test_cuda.py",
            "-p",
            "no:cacheprovider",
            "-rfEs",
        ]
        try:
            import xdist  # noqa: F401

            command += ["-n", str(min(8, max(1, (os.cpu_count() or 2) // 2)))]
        except ImportError:
            pass
        log = self.out / "cuda-tests.log"
        code, seconds = self.run(command, until - time.monotonic(), log)
        text = log.read_text(errors="replace")
        counts = pytest_counts(text)
        status = {0: "done", 1: "done: some tests failed", None: "partial: out of time"}.get(
            code, f"failed: pytest exit code {code}"
        )
        return {"status": status, "exit_code": code, "counts": counts, "log": log.name, "tests": pytest_outcomes(text)}

    def throughput(self, until: float) -> dict[str, Any]:
        p = self.plan
        path = self.out / f"throughput-{self.kind}.json"
        left_out = dict(p.left_out_variants)
        variants = list(p.variants)
        if self.kind != "cuda" and "cuda-graphs" in variants:
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
        code = (
            "import json, sys, time; from deepernets import atomic, bench; kwargs = json.loads(sys.argv[1]); "
            "kwargs['deadline'] = float(sys.argv[2]); "
            "atomic.write_json(sys.argv[3], bench.throughput(**kwargs))"
        )
        # CLOCK_MONOTONIC is one clock for every process: the child stops measuring 10 s before our deadline
        command = [sys.executable, "-c", code, json.dumps(kwargs), repr(until - 10), str(path)]
        exit_code, _ = self.run(command, until - time.monotonic())
        if not path.exists():
            return {"status": "failed" if exit_code is not None else "stopped: out of time", "exit_code": exit_code}
        result = json.loads(path.read_text())
        result["not_run"] = left_out
        self.write(path.name, result)
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

    def time_to_accuracy(self, until: float) -> dict[str, Any]:
        from time_to_accuracy import time_to_accuracy

        fastest = self.steps.get("throughput", {}).get("fastest", {})
        tasks, status = [], "done"
        with (self.out / "sitting.log").open("a") as log:
            for task in self.plan.tta:
                speed = fastest.get(task["model"], {})
                variant = speed.get("variant", "eager")
                name = f"{task['dataset']}-{task['model']}"
                left = until - time.monotonic()
                # from step 2's speed: start-up, compiling, and every epoch's training and evaluation
                args = [*task["args"], *VARIANT_FLAGS[variant]]
                train_images = int(args[args.index("--subset") + 1]) if "--subset" in args else FULL[task["dataset"]]
                estimate = (
                    15 + speed.get("warmup_s", 0) + task["epochs"] * train_images * 1.2 / speed["images_per_s"]
                    if speed
                    else 0
                )
                if left <= 5 or estimate > left:
                    why = (
                        f"would take about {estimate:.0f} s by step 2's speed, {left:.0f} s left"
                        if estimate > left
                        else "out of time"
                    )
                    tasks.append({"task": name, "status": f"skipped: {why}", "variant": variant})
                    status = "partial: out of time"
                    continue
                self.say(f"  {task['model']} on {task['dataset']}: {task['epochs']} epochs, {variant}")
                try:
                    r = time_to_accuracy(
                        task["model"],
                        task["dataset"],
                        task["target"],
                        task["epochs"],
                        self.plan.device,
                        tuple(args),
                        timeout=left,
                        output=log,
                    )
                except subprocess.TimeoutExpired:
                    tasks.append({"task": name, "status": "stopped: out of time", "variant": variant})
                    status = "partial: out of time"
                    continue
                except subprocess.CalledProcessError as e:
                    tasks.append({"task": name, "status": f"failed: exit code {e.returncode}", "variant": variant})
                    status = "failed" if status == "done" else status
                    continue
                r["settings"]["variant"] = variant
                file = self.write(f"time_to_accuracy-{name}-{self.kind}.json", r)
                tasks.append(
                    {
                        "task": name,
                        "status": "done",
                        "variant": variant,
                        "file": file.name,
                        "final_test_acc": r["final_test_acc"],
                        "target": task["target"],
                        "reached": r["reached"],
                        "wall_time_s": r["wall_time_s"],
                        "epochs": task["epochs"],
                    }
                )
        return {"status": status, "tasks": tasks}

    def grid_file(self, name: str, axes: dict[str, list], lr_finder_steps: int | None) -> Path:
        """The seed grid with some axes replaced (a slice, or the datasets reordered), as a grid YAML file."""
        grid = dataclasses.asdict(study.load_grid("seed"))
        grid["axes"] = {k: axes.get(k, v) for k, v in grid["axes"].items()}
        if lr_finder_steps:
            grid["lr_finder_steps"] = lr_finder_steps
        path = self.work / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({**grid, "name": "seed"}, sort_keys=False))
        return path

    def workers(self, grid: Path, folder: Path, n: int, overrides: dict[str, Any], until: float) -> dict[str, Any]:
        """n `deepernets study` workers on one folder, shards i/n; stopped (SIGINT) at `until`."""
        folder.mkdir(parents=True, exist_ok=True)
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()]
        if self.plan.device != "auto":
            flags.append(f"--device={self.plan.device}")
        threads = str(self.plan.threads or max(1, (os.cpu_count() or 2) // n))
        env = {**self.env, "OMP_NUM_THREADS": threads}
        started = time.monotonic()
        procs = []
        for i in range(n):
            log = (folder / f"worker{i}.log").open("w")
            command = [
                sys.executable,
                "-m",
                "deepernets",
                "study",
                str(grid),
                "--out",
                str(folder),
                "--shard",
                f"{i}/{n}",
                *flags,
            ]
            procs.append(
                subprocess.Popen(
                    command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()
        self.groups += procs
        out_of_time = False
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                out_of_time = True
                break
        if out_of_time:
            self.stop(procs)
        wall = time.monotonic() - started
        with (self.out / "sitting.log").open("a") as log:
            for i in range(n):
                log.write(
                    f"--- {folder.name} worker {i}/{n}\n{(folder / f'worker{i}.log').read_text(errors='replace')}"
                )
        runs = study_runs(folder)
        finished = [r for r in runs if r["status"] in ("finished", "diverged")]
        images = sum(r["train_images"] * r["epochs_completed"] for r in runs)
        return {
            "workers": n,
            "omp_threads": int(threads),
            "wall_s": round(wall, 1),
            "out_of_time": out_of_time,
            "runs_finished": len(finished),
            "runs_per_hour": round(len(finished) / wall * 3600, 1),
            "train_images_per_s_all_workers": round(images / wall, 1),
            "exit_codes": [p.returncode for p in procs],
        }

    def study_workers(self, until: float) -> dict[str, Any]:
        grid = self.grid_file("probe-grid", self.plan.probe_axes, None)
        runs = len(study.expand(study.load_grid(str(grid)), self.work, self.plan.probe_overrides))
        trials, status = [], "done"
        counts = self.plan.worker_counts
        for k, n in enumerate(counts):
            share = (until - time.monotonic()) / (len(counts) - k)  # an equal share of what is left
            if share <= 5:
                trials.append({"workers": n, "status": "skipped: out of time"})
                status = "partial: out of time"
                continue
            folder = self.work / f"probe-n{n}"
            if folder.exists():
                import shutil

                shutil.rmtree(folder)
            self.say(f"  {n} worker(s) on {runs} runs (up to {share:.0f} s)")
            trial = self.workers(grid, folder, n, self.plan.probe_overrides, time.monotonic() + share)
            trials.append(trial)
            self.say(
                f"  {n} worker(s): {trial['runs_finished']} of {runs} runs in {trial['wall_s']:.0f} s, "
                f"{trial['runs_per_hour']:.0f} runs/h"
            )
            if trial["out_of_time"]:
                status = "partial: out of time"
        measured = [t for t in trials if t.get("runs_finished")]
        best = max(measured, key=lambda t: t["runs_per_hour"])["workers"] if measured else None
        result = {
            "status": status,
            "slice": {"axes": self.plan.probe_axes, "overrides": self.plan.probe_overrides, "runs": runs},
            "trials": trials,
            "best_workers": best,
        }
        self.write(f"study-{self.kind}.json", {"study_workers": result})
        return result

    def study(self, until: float, workers: int | None, resume_from: Path | None) -> dict[str, Any]:
        probed = self.steps.get("study-workers", {}).get("best_workers")
        n = workers or probed or 1
        chosen_by = "--workers" if workers else "the study-workers step" if probed else "default: no probe result"
        grid = self.grid_file("seed", self.plan.study_axes, self.plan.lr_finder_steps)
        folder = self.work / "seed"
        restored = unpack_runs(resume_from, folder) if resume_from else 0
        planned = study.expand(study.load_grid(str(grid)), folder, self.plan.study_overrides)
        self.say(
            f"  {n} worker(s) on {len(planned)} runs, {planned[0].config.dataset} first"
            + (f"; {restored} finished runs restored from {resume_from}" if resume_from else "")
        )
        trial = self.workers(grid, folder, n, self.plan.study_overrides, until)
        runs = study_runs(folder)
        finished = [r for r in runs if r["status"] in ("finished", "diverged")]
        archive = self.out / "study-runs.tar.gz"
        files = pack_runs(folder, archive)
        in_progress = [r for r in runs if r["status"] not in ("finished", "diverged")]
        result = {
            "status": "stopped: out of time" if trial["out_of_time"] else "done",
            "workers": n,
            "chosen_by": chosen_by,
            "planned_runs": len(planned),
            "restored_runs": restored,
            "finished_runs": len(finished),
            "in_progress_when_stopped": [
                {"name": r["name"], "epochs_completed": r["epochs_completed"]} for r in in_progress
            ],
            "runs": runs,
            "archive": archive.name,
            "archived_files": files,
            "trial": trial,
        }
        path = self.out / f"study-{self.kind}.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        self.write(path.name, {**previous, "study": result})
        return result

    # -- the final table --------------------------------------------------------------------------------------

    def table(self) -> str:
        lines = [
            f"GPU sitting on {self.device}: {time.monotonic() - self.started:.0f} s of "
            f"{self.plan.minutes * 60:.0f} s; results in {self.out}",
            f"{'step':<17} {'status':<8} {'time':>6}  result",
        ]
        for name in STEPS:
            entry = self.steps.get(name)
            if entry is None:
                continue
            status, _, why = entry["status"].partition(": ")
            result = _brief(name, entry)
            if why and why not in result:
                result = f"{why}; {result}" if result else why
            lines.append(f"{name:<17} {status:<8} {entry['seconds']:>5.0f}s  {result}")
        models = self.steps.get("throughput", {}).get("models", {})
        if models:
            lines.append(
                f"throughput, images/s at batch {self.plan.bench_batch} (share of the bf16 GEMM rate; peak MB):"
            )
            variants = [v for v in ("eager", "cuda-graphs", "compile") if any(v in m for m in models.values())]
            lines.append(
                f"  {'model':<9}"
                + "".join(f" {v:>22}" for v in variants)
                + f" {'classic (workers)':>20} {'fastest ×':>10}"
            )
            for name, m in models.items():
                cells = "".join(f" {m[v] if v in m else '-':>22}" for v in variants)
                lines.append(f"  {name:<9}{cells} {m.get('classic', '-'):>20} {m.get('speedup', '-'):>10}")
        lines.append(f"stopped here: out of time {self.stopped_at}" if self.stopped_at else "every step ran to its end")
        return "\n".join(lines)


def _speeds(m: dict[str, Any]) -> dict[str, Any]:
    """One model's throughput in a few short strings for the table."""
    out: dict[str, Any] = {}
    for variant, entry in {"eager": m.get("ours"), **m.get("ours_variants", {})}.items():
        if entry:
            out[variant] = (
                f"{entry['images_per_s_median']:.0f} ({entry['fraction_of_gemm']:.0%}; {entry['peak_memory_mb']:.0f})"
            )
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


def _brief(name: str, entry: dict[str, Any]) -> str:
    if name == "cuda-tests" and "counts" in entry:
        counts = entry["counts"] or {}
        if not counts:  # stopped before pytest's summary: count the outcomes it printed
            for outcome in entry["tests"].values():
                counts[outcome.lower()] = counts.get(outcome.lower(), 0) + 1
        return ", ".join(f"{n} {k}" for k, n in counts.items()) or "no test finished"
    if name == "throughput" and "models" in entry:
        bf16 = entry.get("gemm_gflops", {}).get("bfloat16")
        done = f"{len(entry['models'])} model(s) measured, {len(entry['left_out'])} measurement(s) left out"
        return f"{done}; bf16 GEMM {bf16:.0f} GFLOP/s" if bf16 else done
    if name == "time-to-accuracy":
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
    if name == "study-workers" and "trials" in entry:
        rates = " ".join(f"{t['workers']}:{t['runs_per_hour']:.0f}" for t in entry["trials"] if "runs_per_hour" in t)
        return f"runs/h by workers {rates}; best {entry['best_workers']}"
    if name == "study" and "planned_runs" in entry:
        lost = len(entry["in_progress_when_stopped"])
        return (
            f"{entry['finished_runs']} of {entry['planned_runs']} runs finished with {entry['workers']} "
            f"worker(s) ({lost} stopped mid-run); {entry['archive']}"
        )
    return ""


def pytest_counts(text: str) -> dict[str, int]:
    import re

    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|errors?)\b", line)]
    if not lines:
        return {}
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", lines[-1])}


def pytest_outcomes(text: str) -> dict[str, str]:
    import re

    outcomes = {}
    for line in text.splitlines():
        match = re.search(r"(tests/\S+::\S+).*?\b(PASSED|FAILED|SKIPPED|ERROR)\b", line) or re.search(
            r"\b(PASSED|FAILED|SKIPPED|ERROR)\b.*?(tests/\S+::\S+)", line
        )
        if match:
            a, b = match.groups()
            test, outcome = (a, b) if a.startswith("tests/") else (b, a)
            outcomes[test] = outcome
    return outcomes


def study_runs(folder: Path) -> list[dict[str, Any]]:
    runs = []
    for summary_path in sorted(folder.glob("*/summary.json")):
        s = json.loads(summary_path.read_text())
        runs.append(
            {
                key: s.get(key)
                for key in (
                    "name",
                    "status",
                    "model",
                    "dataset",
                    "optimizer",
                    "schedule",
                    "lr",
                    "epochs",
                    "epochs_completed",
                    "final_test_acc",
                    "wall_time_s",
                    "train_images_per_s",
                    "train_images",
                )
            }
        )
    return runs


def pack_runs(folder: Path, archive: Path) -> int:
    """The study folder's text files (ARCHIVED names, plain files) into one .tar.gz; returns how many."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.name in ARCHIVED
        and "checkpoints" not in p.relative_to(folder).parts
    )
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder)}", recursive=False)
    tmp.replace(archive)
    return len(files)


def unpack_runs(archive: Path, folder: Path) -> int:
    """Restore the finished and diverged runs (and LR-finder results) of an earlier sitting's archive."""
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and Path(m.name).name in ARCHIVED}
        done = set()
        for name, member in members.items():
            parts = Path(name).parts
            if name.endswith("/summary.json") and len(parts) == 3:
                status = json.loads(tar.extractfile(member).read()).get("status")
                if status in ("finished", "diverged"):
                    done.add(parts[1])
        for name, member in members.items():
            parts = Path(name).parts
            if ".." in parts or Path(name).is_absolute() or len(parts) < 2:
                continue
            if parts[1] in done or parts[1] == "lr_finder" or (len(parts) == 2 and parts[1] == "study.json"):
                target = folder.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return len(done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="every step on the CPU with tiny sizes (for testing)")
    parser.add_argument("--out", help="where results go (default $OUT, else runs/sitting)")
    parser.add_argument("--work", help="where run folders go (default runs/sitting-work; not returned)")
    parser.add_argument("--data-dir", help="dataset root (sets DEEPERNETS_DATA for every step)")
    parser.add_argument("--minutes", type=float, help="deadline from the start (default 8.5; --tiny: 8)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"which steps, in order: {','.join(STEPS)}")
    parser.add_argument("--caps", default="", help="seconds per step at most, e.g. throughput=120,study-workers=60")
    parser.add_argument("--tta-epochs", default="", help="epoch budgets fixed in advance, e.g. resnet20=50,vgg16_bn=40")
    parser.add_argument("--workers", type=int, help="study workers on the GPU (skips the probe's choice)")
    parser.add_argument("--resume-from", help="an earlier sitting's study-runs.tar.gz: its finished runs are kept")
    args = parser.parse_args(argv)

    plan = tiny_plan() if args.tiny else gpu_plan()
    if args.minutes:
        plan.minutes = args.minutes
    for item in filter(None, args.caps.split(",")):
        key, value = item.split("=")
        plan.caps[key] = float(value)
    for item in filter(None, args.tta_epochs.split(",")):
        key, value = item.split("=")
        for task in plan.tta:
            if task["model"] == key:
                task["epochs"] = int(value)
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    out = Path(args.out or os.environ.get("OUT") or REPO / "runs" / "sitting")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or REPO / "runs" / "sitting-work")
    work.mkdir(parents=True, exist_ok=True)

    sitting = Sitting(plan, out, work, args.data_dir)
    try:
        sitting.say(f"sitting on {sitting.device}, deadline {plan.minutes * 60:.0f} s, steps {', '.join(steps)}")
        functions = {
            "cuda-tests": (sitting.cuda_tests,),
            "throughput": (sitting.throughput,),
            "time-to-accuracy": (sitting.time_to_accuracy,),
            "study-workers": (sitting.study_workers,),
            "study": (sitting.study, args.workers, Path(args.resume_from) if args.resume_from else None),
        }
        for name in STEPS:
            if name in steps:
                sitting.step(name, *functions[name])
        sitting.save()
    finally:
        sitting.close()
    print(sitting.table(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
