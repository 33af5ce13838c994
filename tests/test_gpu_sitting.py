"""benchmarks/gpu/sitting.py: its tiny mode on the CPU end to end (slow), its archive, pytest parsing and table."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu import table  # noqa: E402
from gpu.archive import ARCHIVED, pack_runs, unpack_runs  # noqa: E402
from gpu.plan import STEPS  # noqa: E402
from gpu.steps.cuda_tests import pytest_counts, pytest_outcomes  # noqa: E402
from gpu.workers import grid_file  # noqa: E402

from deepernets import study  # noqa: E402

SCRIPT = REPO / "benchmarks" / "gpu" / "sitting.py"

STATES = ("done", "partial", "stopped", "skipped", "failed")


def write_run(folder: Path, name: str, status: str) -> None:
    run = folder / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "plots").mkdir()
    (run / "summary.json").write_text(json.dumps({"status": status, "name": name}))
    for file in ("config.yaml", "metrics.csv", "log.txt", "confusion.csv", "per_class.csv"):
        (run / file).write_text(file)
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run / "plots" / "curves.png").write_bytes(b"png")
    (run / ".lock").write_text("")


def test_archive_keeps_text_files_only_and_a_restore_keeps_finished_runs(tmp_path):
    folder = tmp_path / "seed"
    write_run(folder, "cifar10-resnet20-sgd-lr0.01-s0", "finished")
    write_run(folder, "cifar10-resnet20-sgd-lr0.001-s0", "running")
    finder = folder / "lr_finder" / "cifar10-resnet20-sgd-abc"
    (finder / "plots").mkdir(parents=True)
    (finder / "lr_finder.csv").write_text("step,lr")
    (finder / "result.json").write_text("{}")
    (finder / "plots" / "lr_finder.png").write_bytes(b"png")
    (folder / "study.json").write_text("{}")

    archive = tmp_path / "seed-runs.tar.gz"
    assert pack_runs(folder, archive) == 2 * 6 + 2 + 1
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert all(Path(n).name in ARCHIVED and n.startswith("seed/") for n in names)
    assert not any("checkpoints" in n or n.endswith((".pt", ".png", ".lock")) for n in names)

    restored = tmp_path / "again" / "seed"
    assert unpack_runs(archive, restored) == 1
    assert (restored / "cifar10-resnet20-sgd-lr0.01-s0" / "summary.json").exists()
    assert not (restored / "cifar10-resnet20-sgd-lr0.001-s0").exists()  # unfinished: it starts again
    assert (restored / "lr_finder" / "cifar10-resnet20-sgd-abc" / "result.json").exists()
    with pytest.raises(ValueError, match="holds the study seed, not cifar10-recipe"):  # two plans in one folder
        unpack_runs(archive, tmp_path / "cifar10-recipe")


def test_a_sitting_reorders_or_cuts_down_a_grids_axes_but_never_adds_to_them(tmp_path):
    sitting = SimpleNamespace(work=tmp_path)
    reordered = study.load_grid(str(grid_file(sitting, "seed", "seed", {"dataset": ["cifar10", "mnist"]}, None)))
    assert reordered.name == "seed" and reordered.axes["dataset"] == ["cifar10", "mnist"]
    assert reordered.axes["model"] == study.load_grid("seed").axes["model"]
    recipe = study.load_grid(str(grid_file(sitting, "cifar10-recipe", "r", {"dataset": ["cifar10", "mnist"]}, None)))
    assert recipe.name == "cifar10-recipe" and recipe.preset == "cifar10" and recipe.axes["dataset"] == ["cifar10"]
    assert len(study.expand(recipe, tmp_path, {})) == 12


def test_a_sitting_refuses_datasets_its_study_grid_lacks(tmp_path):
    command = [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path), "--study-grid", "cifar10-recipe",
               "--study-datasets", "mnist"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and not (tmp_path / "sitting.json").exists()
    assert result.stderr.strip() == "--study-datasets: the grid cifar10-recipe has no mnist"


def test_pytest_output_is_read_with_and_without_xdist():
    plain = "tests/test_cuda.py::test_a PASSED  [ 50%]\ntests/test_cuda.py::test_b[x] FAILED [100%]\n"
    plain += "==== 1 failed, 1 passed, 2 skipped in 3.2s ===="
    assert pytest_counts(plain) == {"failed": 1, "passed": 1, "skipped": 2}
    assert pytest_outcomes(plain) == {"tests/test_cuda.py::test_a": "PASSED",
                                      "tests/test_cuda.py::test_b[x]": "FAILED"}  # fmt: skip
    xdist = "[gw1] [ 50%] PASSED tests/test_cuda.py::test_a \n==== 7 passed in 80.1s ===="
    assert pytest_outcomes(xdist) == {"tests/test_cuda.py::test_a": "PASSED"}
    assert pytest_counts(xdist) == {"passed": 7}
    assert pytest_counts("KeyboardInterrupt\n") == {}


@pytest.mark.slow
def test_tiny_sitting_runs_every_step_on_the_cpu(tmp_path, data_dir):
    """About 2 minutes on this shared 2-core CPU (one thread per process)."""
    out, work = tmp_path / "out", tmp_path / "work"
    command = [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--work", str(work),
               "--data-dir", str(data_dir)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "DEEPERNETS_DATA"}  # --data-dir must reach every step
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout[result.stdout.index("GPU sitting on CPU") :].splitlines()
    assert lines[1].split() == ["step", "status", "time", "result"]
    assert [line.split()[0] for line in lines[2:7]] == list(STEPS)
    assert lines[-1].startswith(("stopped here: out of time", "every step ran to its end"))

    summary = json.loads((out / "sitting.json").read_text())
    steps = summary["steps"]
    assert list(steps) == list(STEPS)
    assert all(s["status"].split(":")[0] in STATES for s in steps.values()), steps
    assert steps["cuda-tests"]["status"] == "skipped: tiny mode runs on the CPU"
    assert "failed" not in json.dumps([s["status"] for s in steps.values()])

    throughput = json.loads((out / "throughput-cpu.json").read_text())
    native = ["float32", "bfloat16"] if throughput["versions"]["cpu"]["native_bf16"] else ["float32"]
    assert list(throughput["gemm_gflops"]) == native and all(v > 0 for v in throughput["gemm_gflops"].values())
    assert throughput["not_run"]["cuda-graphs"] == "CUDA only"
    measured = throughput["models"]
    assert "resnet20" in measured and measured["resnet20"]["ours"]["images_per_s_median"] > 0
    if steps["throughput"]["status"] == "done":
        assert set(measured) == {"resnet20", "vgg11_bn"}
        assert all(m["classic"]["num_workers"][0] in (0, 2) and m["speedup"] > 0 for m in measured.values())

    [task] = steps["time-to-accuracy"]["tasks"]
    if task["status"] == "done":
        tta = json.loads((out / task["file"]).read_text())
        assert tta["reached"] == (tta["final_test_acc"] >= tta["settings"]["target"])
        assert tta["test_acc_per_epoch"] == [tta["final_test_acc"]]  # accuracies, not another column

    probe = steps["study-workers"]
    assert [t["workers"] for t in probe["trials"]] == [1, 2]
    assert probe["best_workers"] in (1, 2)

    entry = steps["study"]
    assert entry["workers"] == probe["best_workers"] and entry["planned_runs"] == 3
    with tarfile.open(out / "seed-runs.tar.gz") as tar:
        names = tar.getnames()
        assert names and all(Path(n).name in ARCHIVED for n in names)
        assert not any("checkpoints" in n or n.endswith((".pt", ".png")) for n in names)
        finished = [json.loads(tar.extractfile(n).read()) for n in names if n.endswith("/summary.json")]
    assert sum(s["status"] == "finished" for s in finished) == entry["finished_runs"] >= 1
    assert len(list(out.iterdir())) <= 8  # what a device call brings back from $OUT


def test_the_table_reads_a_gpu_sitting_that_ran_out_of_time():
    """The final table from GPU-shaped results, which the tiny mode cannot produce on a CPU."""
    speeds = {"eager": "9000 (5%; 900)", "cuda-graphs": "30000 (17%; 950)", "compile": "12000 (7%; 910)",
              "classic": "8000 (8)", "speedup": "×3.75 cuda-graphs", "fastest_variant": "cuda-graphs"}  # fmt: skip
    steps = {
        "cuda-tests": {"status": "partial: out of time", "seconds": 120, "counts": {},
                       "tests": {"tests/test_cuda.py::a": "PASSED", "tests/test_cuda.py::b": "FAILED"}},
        "throughput": {"status": "done", "seconds": 190, "models": {"resnet20": speeds}, "left_out": [],
                       "gemm_gflops": {"float32": 51000.0, "bfloat16": 790000.0}},
        "time-to-accuracy": {"status": "partial: out of time", "seconds": 100, "tasks": [
            {"task": "cifar10-resnet20", "status": "done", "variant": "cuda-graphs", "final_test_acc": 91.3,
             "target": 91.25, "reached": True, "wall_time_s": 95.0, "epochs": 50},
            {"task": "cifar10-vgg16_bn", "status": "skipped: would take about 130 s by step 2's speed, 60 s left"}]},
        "study-workers": {"status": "done", "seconds": 80, "best_workers": 4, "trials": [
            {"workers": n, "runs_per_hour": r} for n, r in ((1, 200.0), (2, 310.0), (4, 420.0), (8, 400.0))]},
        "study": {"status": "stopped: out of time", "seconds": 20, "finished_runs": 0, "planned_runs": 48,
                  "workers": 4, "in_progress_when_stopped": [{}] * 4, "archive": "seed-runs.tar.gz"},
    }  # fmt: skip
    lines = table.render(steps, device="NVIDIA H100 80GB HBM3", elapsed_s=520.0, limit_s=525.0, out=Path("/out"),
                         batch_size=128, stopped_at="during study").splitlines()  # fmt: skip
    assert lines[0].startswith("GPU sitting on NVIDIA H100 80GB HBM3")
    rows = {line.split()[0]: line for line in lines[2:7]}
    assert "1 passed, 1 failed" in rows["cuda-tests"] and rows["cuda-tests"].split()[1] == "partial"
    assert "bf16 GEMM 790000 GFLOP/s" in rows["throughput"]
    assert "cifar10-resnet20 91.30% (reached 91.25%) in 95 s, 50 ep, cuda-graphs" in rows["time-to-accuracy"]
    assert "cifar10-vgg16_bn skipped: would take about 130 s" in rows["time-to-accuracy"]
    assert "1:200 2:310 4:420 8:400; best 4" in rows["study-workers"]
    assert "0 of 48 runs finished with 4 worker(s) (4 stopped mid-run)" in rows["study"]
    assert lines[8].split() == ["model", "eager", "cuda-graphs", "compile", "classic", "(workers)", "fastest", "×"]
    assert lines[9].split()[:2] == ["resnet20", "9000"] and "×3.75 cuda-graphs" in lines[9]
    assert lines[-1] == "stopped here: out of time during study"
