"""deepernets: train, evaluate and compare deep convolutional networks for image classification."""

__version__ = "0.1.0"
