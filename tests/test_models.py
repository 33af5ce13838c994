import pytest
import torch
import torchvision
from torch import nn

from deepernets import models
from deepernets.errors import UserError
from deepernets.train.cpu_speed import NCHWConv2d, conv_input_sizes
from deepernets.train.device import Precision, place_model


@pytest.mark.parametrize(
    ("name", "options", "reference"),
    [
        ("resnet20", {}, "0.27"),
        ("resnet44", {}, "0.66"),
        ("resnet110", {}, "1.7"),
        ("vgg16_bn", {"head": "compact"}, "15.25"),  # 512-512-512-10, as chenyaofo/pytorch-cifar-models
    ],
)
def test_parameter_counts_match_references(name, options, reference):
    """The count in millions, rounded to the reference's own precision, equals the reference."""
    count = models.count_parameters(models.build(name, 3, 10, **options))
    decimals = len(reference.split(".")[1])
    assert f"{count / 1e6:.{decimals}f}" == reference


def test_exact_cifar_resnet_counts():
    # He et al.'s option-A CIFAR ResNets, as in akamaster/pytorch_resnet_cifar10
    assert models.count_parameters(models.build("resnet20")) == 269_722
    assert models.count_parameters(models.build("resnet110")) == 1_727_962


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_imagenet_resnets_equal_torchvision(name):
    ours = models.count_parameters(models.build(name, 3, 10))
    theirs = models.count_parameters(getattr(torchvision.models, name)(num_classes=10))
    assert ours == theirs
    ours_1000 = models.count_parameters(models.build(name, 3, 1000))
    assert ours_1000 == models.count_parameters(getattr(torchvision.models, name)())


def test_classic_vgg_head_is_4096_wide():
    model = models.build("vgg16", 3, 10, head="classic")
    assert model.classifier[0].out_features == 4096
    assert models.count_parameters(model) == 14_714_688 + 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10


def test_shortcut_b_adds_projection_parameters():
    a = models.count_parameters(models.build("resnet20", shortcut="A"))
    b = models.count_parameters(models.build("resnet20", shortcut="B"))
    assert b > a


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_runs_on_32x32(name, channels):
    options = {"small_stem": True} if name in ("resnet18",) else {}
    model = models.build(name, channels, 7, **options).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, 7)


def test_flops_resnet20():
    # about 41 M multiply-adds per 32×32 image, as the ResNet paper's CIFAR models are usually quoted
    assert models.flops_per_image("resnet20") == pytest.approx(2 * 40.8e6, rel=0.02)


def test_unknown_model_and_option():
    with pytest.raises(UserError, match="unknown model 'resnet21'.*resnet20"):
        models.build("resnet21")
    with pytest.raises(UserError, match="no option head"):
        models.build("resnet20", head="classic")
    with pytest.raises(UserError, match="shortcut"):
        models.build("resnet20", shortcut="C")


# What `deepernets models` printed before VGG got its adaptive pooling: parameters and forward FLOPs at 32×32.
VGG_AT_32 = {
    ("vgg11", "compact"): (9_750_922, 306_587_648),
    ("vgg11", "classic"): (28_144_010, 343_359_488),
    ("vgg11_bn", "compact"): (9_753_674, 306_587_648),
    ("vgg13_bn", "compact"): (9_938_378, 457_582_592),
    ("vgg16", "classic"): (33_638_218, 664_223_744),
    ("vgg16_bn", "compact"): (15_249_354, 627_451_904),
    ("vgg19_bn", "compact"): (20_560_330, 797_321_216),
    ("vgg19_bn", "classic"): (38_953_418, 834_093_056),
}


@pytest.mark.parametrize(("name", "head"), list(VGG_AT_32))
def test_vgg_parameters_and_flops_at_32x32_are_unchanged(name, head):
    assert (
        models.count_parameters(models.build(name, 3, 10, head=head)),
        models.flops_per_image(name, 3, 10, 32, head=head),
    ) == VGG_AT_32[name, head]


def test_vgg_pooling_is_the_identity_at_32x32():
    torch.manual_seed(0)
    model = models.build("vgg11_bn", 3, 10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.classifier(model.features(x).flatten(1)))  # the head as before pooling


@pytest.mark.parametrize("size", [33, 40, 64, 100])
@pytest.mark.parametrize("name", ["vgg11_bn", "vgg16"])
def test_vgg_runs_at_any_size_from_32(name, size):
    model = models.build(name, 3, 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)
    assert models.flops_per_image(name, size=size) > models.flops_per_image(name, size=32)


def test_vgg_at_64_pixels_through_the_cpu_layer_swaps():
    """At 64×64 the last stage convolves 4×4 maps (NCHW on CPU) and no 2×2 ones (nothing folded)."""
    torch.manual_seed(0)
    model = models.build("vgg11_bn", 3, 10)
    reference = models.build("vgg11_bn", 3, 10).eval()
    reference.load_state_dict(model.state_dict())
    sizes = conv_input_sizes(model, (3, 64, 64))
    assert list(sizes.values()) == [(64, 64), (32, 32), (16, 16), (16, 16), (8, 8), (8, 8), (4, 4), (4, 4)]
    placed = place_model(model, torch.device("cpu"), Precision("bf16", True, "cpu"), (3, 64, 64))
    convs = [m for m in placed.modules() if isinstance(m, nn.Conv2d)]
    assert [type(c) for c in convs] == [nn.Conv2d] * 6 + [NCHWConv2d] * 2
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(placed.eval()(x), reference(x), atol=1e-4)
    with Precision("bf16", True, "cpu").autocast():
        loss = placed.train()(x).float().logsumexp(1).sum()
    loss.backward()
    assert all(c.weight.grad is not None and c.weight.grad.isfinite().all() for c in convs)
