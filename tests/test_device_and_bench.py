import platform

import pytest
import torch
from conftest import REPO

from deepernets import bench, models
from deepernets.bench import gemm, machine
from deepernets.bench.measure import measure
from deepernets.bench.pipelines import ClassicDataset, synthetic_cifar
from deepernets.errors import UserError
from deepernets.train.cpu_speed import FoldedConv2d, NCHWConv2d
from deepernets.train.device import Precision, cpu_supports_bf16, place_model, resolve_device, resolve_precision


def test_auto_precision_on_cpu_follows_native_bf16_support():
    p = resolve_precision("auto", torch.device("cpu"))
    assert p.name == ("bf16" if cpu_supports_bf16() else "fp32")
    assert p.channels_last, "channels_last is the faster layout on CPU in fp32 as in bf16"
    assert resolve_precision("fp32", torch.device("cpu")) == Precision("fp32", True, "cpu")


def test_fp16_and_cuda_need_a_gpu():
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_bf16_autocast_runs_convolutions_in_bf16():
    conv = torch.nn.Conv2d(3, 4, 3)
    with Precision("bf16", True, "cpu").autocast():
        out = conv(torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16


def test_cpu_channels_last_convolves_small_maps_in_nchw_and_folds_the_2x2_ones():
    torch.manual_seed(0)
    reference = models.build("vgg11_bn").eval()
    model = place_model(models.build("vgg11_bn"), torch.device("cpu"), Precision("bf16", True, "cpu"), (3, 32, 32))
    assert model.training  # the probe pass leaves the mode as it found it
    model.load_state_dict(reference.state_dict())  # same keys: only the classes changed
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # vgg11 convolves 32², 16², 8², 8², 4², 4², 2², 2² maps
    assert [type(c) for c in convs] == [torch.nn.Conv2d] * 4 + [NCHWConv2d] * 2 + [FoldedConv2d] * 2
    assert [c.weight.is_contiguous() for c in convs] == [False] * 4 + [True] * 2 + [False] * 2
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.eval()(x.contiguous(memory_format=torch.channels_last)), reference(x), atol=1e-4)


def test_folded_convolution_matches_conv2d_values_and_gradients():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 6, 3, padding=1)
    folded = torch.nn.Conv2d(8, 6, 3, padding=1)
    folded.load_state_dict(conv.state_dict())
    folded.__class__ = FoldedConv2d
    x = torch.randn(5, 8, 2, 2, requires_grad=True)
    x_copy = x.detach().clone().requires_grad_()
    (conv(x) ** 2).sum().backward()
    out = folded(x_copy)
    (out**2).sum().backward()
    assert torch.allclose(out, conv(x), atol=1e-5)
    assert torch.allclose(x_copy.grad, x.grad, atol=1e-4)
    assert torch.allclose(folded.weight.grad, conv.weight.grad, atol=1e-4)
    assert torch.allclose(folded.bias.grad, conv.bias.grad, atol=1e-4)
    other = torch.randn(1, 8, 3, 3)  # not 2×2: an ordinary convolution
    assert torch.allclose(folded(other), conv(other), atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = folded(x.detach())
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), conv(x).detach(), atol=0.05, rtol=0.02)


def test_fp32_placement_leaves_every_convolution_nchw():
    model = place_model(models.build("vgg11_bn"), torch.device("cpu"), Precision("fp32", False, "cpu"), (3, 32, 32))
    assert all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize(("path", "workers"), [("ours", 0), ("classic", 0), ("classic", 2)])
def test_throughput_measurement_runs_both_pipelines(path, workers):
    result = measure(path, "resnet20", 16, 2, workers, "cpu")
    assert result["images_per_s"] > 0 and result["peak_memory_bytes"] > 0
    assert result["precision"] == ("fp32" if path == "classic" else resolve_precision("auto", torch.device("cpu")).name)


def test_classic_dataset_applies_the_usual_transforms():
    images, labels = synthetic_cifar(4)
    x, y = ClassicDataset(images, labels)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == int(labels[0])
    assert -3 < float(x.mean()) < 3


def test_padding_flops_count_the_taps_that_fall_outside_the_map():
    # vgg11_bn's 3×3 convolutions see 32², 16², 8², 8², 4², 4², 2², 2² maps; per map side s, 3s - 2 of 3s taps are real
    channels = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    sizes = [32, 16, 8, 8, 4, 4, 2, 2]
    expected = sum(2 * i * o * (9 * s * s - (3 * s - 2) ** 2) for (i, o), s in zip(channels, sizes, strict=True))
    assert gemm.padding_flops_per_image("vgg11_bn") == expected


def test_gemm_rate_is_measured():
    assert gemm.gemm_rate(torch.float32, torch.device("cpu"), size=256, seconds=0.1) > 1e8


def test_bench_times_only_native_precisions_shows_progress_and_names_the_cpu(monkeypatch):
    # a CPU without native bf16, as an AVX2 machine: the kernels limited here, the in-process check answered as there
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(gemm, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(machine, "cpu_supports_bf16", lambda: False)
    lines: list[str] = []
    result = bench.throughput(["resnet20"], 16, 1, 1, "cpu", lines.append, classic_workers=(0,), gemm_seconds=0.1,
                              gemm_size=256)  # fmt: skip
    assert list(result["gemm_gflops"]) == ["float32"], "emulated bf16 must not be timed"
    assert result["models"]["resnet20"]["ours"]["precision"] == "fp32"
    cpu = result["versions"]["cpu"]
    assert cpu["model"] and "avx2" in cpu["isa_flags"] and cpu["native_bf16"] is False
    if platform.machine() == "x86_64":  # "AMD EPYC" is a Zen 3 or a Zen 4: the numbers tell
        assert cpu["family"].isdigit() and cpu["model_number"].isdigit()
    assert cpu["kernel_limits"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert any(line.startswith("[1/2] timing resnet20") for line in lines) and any("[2/2]" in x for x in lines)


def test_conv_passes_times_every_convolution_as_it_trains_and_skips_the_image_gradient(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import conv_passes

    result = conv_passes.model_passes("vgg11_bn", torch.device("cpu"), batch_size=4, repeats=1, gemm_gflops=100.0)
    layers = result["layers"]
    assert [layer["layer"] for layer in layers] == ["Conv2d"] * 4 + ["NCHWConv2d"] * 2 + ["FoldedConv2d"] * 2
    assert [layer["map"] for layer in layers] == [[32, 32], [16, 16], [8, 8], [8, 8], [4, 4], [4, 4], [2, 2], [2, 2]]
    assert "input_gradient_ms" not in layers[0]  # the first layer's input is the image
    assert all("input_gradient_ms" in layer for layer in layers[1:])
    first = layers[0]
    flops = 2 * 4 * 64 * 3 * 9 * 32 * 32  # batch 4, 3→64 channels, 3×3 taps, 32×32 outputs
    assert first["forward_ms"] == pytest.approx(flops / first["forward_gflops"] / 1e6, rel=0.01, abs=0.006)  # rounding
    weight = result["totals"]["weight_gradient"]
    assert weight["ms_per_step"] == pytest.approx(sum(layer["weight_gradient_ms"] for layer in layers), abs=0.1)
    assert weight["share_of_gemm"] == pytest.approx(weight["gflops"] / 100.0, abs=0.002)  # both rounded
