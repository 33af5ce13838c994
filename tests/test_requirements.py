"""The declared dependency ranges hold here, and the newer APIs the code relies on exist in what is installed.

The lower bounds in pyproject.toml are set by these APIs; run this on any new torch (the GPU machine has 2.11).
"""

import re
import tomllib
from importlib.metadata import version

import torch
from conftest import REPO
from packaging.version import Version
from torch import nn


def test_installed_versions_meet_the_declared_lower_bounds():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("torch>=") for d in declared) and any(d.startswith("pillow>=") for d in declared)
    for requirement in declared:
        name, minimum = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement).groups()
        installed = Version(Version(version(name)).base_version)  # 2.11.0+cu130 -> 2.11.0
        assert installed >= Version(minimum), f"{name} {installed} is older than the declared {minimum}"


def test_fused_optimizers_step_on_cpu():
    """torch >= 2.4: fused SGD, Adam and AdamW on CPU tensors (build_optimizer asks for them everywhere)."""
    for make in (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, fused=True),
                 lambda p: torch.optim.Adam(p, lr=0.1, fused=True),
                 lambda p: torch.optim.AdamW(p, lr=0.1, fused=True)):  # fmt: skip
        layer = nn.Linear(3, 2)
        before = layer.weight.detach().clone()
        optimizer = make(layer.parameters())
        layer(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        assert not torch.equal(before, layer.weight)


def test_cuda_path_apis_exist():
    """The fp16 gradient scaler, the CUDA-graph step marker and the FLOP counter the CUDA path and bench use."""
    assert torch.amp.GradScaler("cuda", enabled=False) is not None
    assert callable(torch.compiler.cudagraph_mark_step_begin)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        counter = FlopCounterMode(display=False)
        with counter:
            nn.Linear(8, 4)(torch.empty(2, 8))
    assert counter.get_total_flops() == 2 * 2 * 8 * 4


def test_pillow_has_resampling_filters():
    from PIL import Image

    assert Image.Resampling.BILINEAR is not None
