"""A normal run prints no library warnings: a newcomer reads every line."""

import os
import subprocess
import sys


def test_a_run_from_undecoded_files_prints_no_warnings(tmp_path, data_dir):
    env = {**os.environ, "DEEPERNETS_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "default"}
    args = ["train", "--model", "resnet20", "--dataset", "mnist", "--subset", "512", "--test-subset", "256",
            "--epochs", "1", "--data-dir", str(data_dir)]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "deepernets", *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert "Warning" not in result.stdout, result.stdout
