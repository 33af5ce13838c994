import pytest
import torch

from deepernets import bench, models
from deepernets.errors import UserError
from deepernets.train.device import Precision, cpu_supports_bf16, place_model, resolve_device, resolve_precision


def test_auto_precision_on_cpu_follows_native_bf16_support():
    p = resolve_precision("auto", torch.device("cpu"))
    assert p.name == ("bf16" if cpu_supports_bf16() else "fp32")
    assert p.channels_last == (p.name == "bf16")
    assert resolve_precision("fp32", torch.device("cpu")) == Precision("fp32", False, "cpu")


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


def test_cpu_channels_last_keeps_convolutions_on_small_maps_in_nchw():
    torch.manual_seed(0)
    reference = models.build("vgg11_bn").eval()
    model = place_model(models.build("vgg11_bn"), torch.device("cpu"), Precision("bf16", True, "cpu"), (3, 32, 32))
    assert model.training  # the probe pass leaves the mode as it found it
    model.load_state_dict(reference.state_dict())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # vgg11 convolves 32², 16², 8², 8², 4², 4², 2², 2² maps: the last four stay NCHW
    assert [c.weight.is_contiguous() for c in convs] == [False] * 4 + [True] * 4
    seen = []
    convs[4].register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].is_contiguous()))
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.eval()(x.contiguous(memory_format=torch.channels_last)), reference(x), atol=1e-4)
    assert seen == [True]


def test_fp32_placement_leaves_every_convolution_nchw():
    model = place_model(models.build("vgg11_bn"), torch.device("cpu"), Precision("fp32", False, "cpu"), (3, 32, 32))
    assert all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize(("path", "workers"), [("ours", 0), ("classic", 0), ("classic", 2)])
def test_throughput_measurement_runs_both_pipelines(path, workers):
    result = bench.measure(path, "resnet20", 16, 2, workers, "cpu")
    assert result["images_per_s"] > 0 and result["peak_memory_bytes"] > 0
    assert result["precision"] == ("fp32" if path == "classic" else resolve_precision("auto", torch.device("cpu")).name)


def test_classic_dataset_applies_the_usual_transforms():
    images, labels = bench.synthetic_cifar(4)
    x, y = bench.ClassicDataset(images, labels)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == int(labels[0])
    assert -3 < float(x.mean()) < 3


def test_gemm_rate_is_measured():
    assert bench.gemm_rate(torch.float32, torch.device("cpu"), size=256, seconds=0.1) > 1e8
