"""Using a trained run: predictions on new images, and export to ONNX or TorchScript."""
