import pytest
import torch
import torchvision

from deepernets import models
from deepernets.errors import UserError


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
