"""One job of a study run as N jobs at once (study/jobs.py starts each as `python -m deepernets.study SPEC`)."""

import sys
from pathlib import Path
from typing import Any

import yaml

from deepernets.errors import UserError
from deepernets.study.grid import Grid
from deepernets.study.jobs import INTERRUPTED, RUNS_FAILED
from deepernets.study.runner import run_study


def main(spec: dict[str, Any]) -> int:
    """One job: run the study as one worker of it, with the settings its parent planned."""
    from deepernets.train.cpu_speed import keep_freed_memory_mapped

    keep_freed_memory_mapped()  # as the deepernets command does
    try:
        counts = run_study(Grid(**spec["grid"]), Path(spec["study_dir"]), spec["overrides"], seeds=spec["seeds"],
                           shard=tuple(spec["shard"]), since=spec["since"])  # fmt: skip
    except (UserError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}")
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished epochs are saved, continue by running the study again")
        return INTERRUPTED
    return RUNS_FAILED if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(yaml.safe_load(sys.argv[1])))
