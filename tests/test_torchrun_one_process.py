"""`torchrun --nproc_per_node=1` joins a process group of one, so one GPU can test the multi-process path."""

import json
import subprocess
import sys
from pathlib import Path

HELPER = Path(__file__).parent / "helpers" / "world_info.py"


def test_one_process_under_torchrun_joins_a_group_of_one():
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(HELPER)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"rank": 0, "size": 1, "distributed": True, "backend": "gloo", "sum": 1.0}


def test_a_plain_process_stays_a_world_of_one():
    result = subprocess.run([sys.executable, str(HELPER)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"rank": 0, "size": 1, "distributed": False, "backend": None, "sum": 1.0}
