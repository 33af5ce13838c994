"""Published accuracies that the report sets beside the runs: the seed study's and the reference trainings'."""

# The study's published final accuracies (%), SGD, batch 128, 50 epochs.
STUDY = {
    "cifar10": {
        "vgg13": {"lr0.01": 87.77, "lr0.001": 84.03, "scheduler": 87.12},
        "vgg16": {"lr0.01": 88.04, "lr0.001": 93.82, "scheduler": 87.82},
        "resnet20": {"lr0.01": 73.22, "lr0.001": 68.45, "scheduler": 76.35},
        "resnet44": {"lr0.01": 70.95, "lr0.001": 69.02, "scheduler": 75.65},
    },
    "mnist": {
        "vgg13": {"lr0.01": 99.64, "lr0.001": 99.57, "scheduler": 99.65},
        "vgg16": {"lr0.01": 99.62, "lr0.001": 99.53, "scheduler": 99.60},
        "resnet20": {"lr0.01": 99.37, "lr0.001": 98.81, "scheduler": 99.22},
        "resnet44": {"lr0.01": 99.31, "lr0.001": 99.00, "scheduler": 99.38},
    },
}
STUDY_SOURCE = "the seed study, 'Deeper Networks for Image Classification' (its final tables)"
# Published CIFAR-10 test accuracies (%), with their sources.
REFERENCES = {
    "cifar10": {
        "resnet20": (91.25, "He et al. 2016, Table 6"),
        "resnet32": (92.49, "He et al. 2016, Table 6"),
        "resnet44": (92.83, "He et al. 2016, Table 6"),
        "resnet56": (93.03, "He et al. 2016, Table 6"),
        "resnet110": (93.39, "He et al. 2016, Table 6"),
        "vgg11_bn": (92.79, "chenyaofo/pytorch-cifar-models"),
        "vgg13_bn": (94.00, "chenyaofo/pytorch-cifar-models"),
        "vgg16_bn": (94.16, "chenyaofo/pytorch-cifar-models"),
        "vgg19_bn": (93.91, "chenyaofo/pytorch-cifar-models"),
    }
}


def study_numbers(dataset: str, model: str) -> dict[str, float]:
    """The seed study's numbers for a model by policy; a BN variant (vgg13_bn) shares its plain model's."""
    return STUDY.get(dataset, {}).get(model.removesuffix("_bn"), {})
