"""What every step of a sitting shares: the plan, the folders, the clock and log, its children, earlier results."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deepernets import bench
from deepernets.run import atomic
from gpu import REPO
from gpu.plan import Plan
from gpu.processes import ProcessGroups


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
        self.device, self.kind = self._find_device()  # kind: "cuda", or "cpu" (--tiny); it names the result files
        self.log_path = out / "sitting.log"  # everything the steps printed
        self.log_file = self.log_path.open("a", buffering=1)
        self.processes = ProcessGroups(self.env)
        self.steps: dict[str, dict[str, Any]] = {}  # each step's entry in sitting.json, as it ends
        self.stopped_at: str | None = None  # where the deadline first cut a step short

    def _find_device(self) -> tuple[str, str]:
        """The device's name and kind, asked in a subprocess so that this one holds no CUDA context."""
        code = (
            "from deepernets.train.device import device_description, resolve_device; "
            f"d = resolve_device({self.plan.device!r}); print(d.type); print(device_description(d))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, check=True)
        kind, name = out.stdout.strip().splitlines()[-2:]
        return name, kind

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, line: str) -> None:
        stamped = f"[{self.elapsed():6.1f} s] {line}"
        print(stamped, flush=True)
        self.log_file.write(stamped + "\n")

    def write(self, name: str, value: Any) -> Path:
        """A JSON result file under the output folder, written atomically."""
        path = self.out / name
        atomic.write_json(path, value)
        return path

    def save(self) -> None:
        self.write(
            "sitting.json",
            {
                "sitting": "benchmarks/gpu/sitting.py",
                "device": self.device,
                "versions": bench.versions(),
                "minutes": self.plan.minutes,
                "elapsed_s": round(self.elapsed(), 1),
                "stopped_at": self.stopped_at,
                "plan": dataclasses.asdict(self.plan),
                "steps": self.steps,
            },
        )

    def close(self) -> None:
        self.processes.stop_all()
        self.log_file.close()
