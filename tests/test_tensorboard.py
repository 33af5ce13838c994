"""--tensorboard: each epoch's scalars in the run folder, read back as TensorBoard reads them."""

import csv
import importlib.util

import pytest

from deepernets.config import RunConfig
from deepernets.errors import UserError
from deepernets.train.fit import train
from deepernets.train.tensorboard_log import TAGS


def test_the_event_file_holds_every_epochs_scalars(tmp_path, data_dir):
    pytest.importorskip("tensorboard", reason="pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = RunConfig(model="resnet20", dataset="mnist", epochs=2, subset=256, test_subset=256, batch_size=64,
                       data_dir=str(data_dir), runs_dir=str(tmp_path), name="tb", tensorboard=True)  # fmt: skip
    train(config, log=lambda _: None)
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(TAGS.values())
    with (tmp_path / "tb" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    for column, tag in TAGS.items():
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)


def test_tensorboard_without_its_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name))
    with pytest.raises(UserError, match=r"pip install -e '\.\[tensorboard\]' \(in the repository\)"):
        RunConfig(tensorboard=True).validate()
    RunConfig().validate()  # without the flag the package is not needed
