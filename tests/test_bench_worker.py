import os
import signal
import subprocess
import threading

import pytest

from deepernets.bench.worker import MeasureProcess

TINY = {"path": "ours", "model_name": "resnet20", "batch_size": 8, "steps": 1, "workers": 0, "device_name": "cpu"}


def test_one_child_answers_a_series_and_a_failure_ends_it_with_the_reason():
    with MeasureProcess() as child:
        first = child.measure(**TINY)
        pid = child.proc.pid
        second = child.measure(**TINY | {"variant": "eager", "batch_size": 4})
        assert child.proc.pid == pid, "the same child takes the series"
        assert first["images_per_s"] > 0 and second["images_per_s"] > 0 and second["peak_memory_bytes"] > 0
        with pytest.raises(subprocess.CalledProcessError) as failed:
            child.measure(**TINY | {"variant": "cuda-graphs"})
        assert "the cuda-graphs variant needs a CUDA device" in failed.value.stderr
        assert child.proc is None, "a failed child has ended"
        assert child.measure(**TINY)["variant"] == "eager", "the next request starts a fresh child"


def test_a_measurement_past_its_timeout_is_stopped_and_the_child_killed():
    with MeasureProcess() as child:
        with pytest.raises(subprocess.TimeoutExpired):
            child.measure(0.01, **TINY)
        assert child.proc is None


def test_a_child_killed_mid_measurement_is_reported_as_killed():
    with MeasureProcess() as child:
        child.measure(**TINY)  # started and idle
        pid = child.proc.pid
        threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
        with pytest.raises(subprocess.CalledProcessError) as failed:
            child.measure(**TINY | {"steps": 10_000})
        assert failed.value.stderr.startswith("killed by signal 9")
        assert child.proc is None
