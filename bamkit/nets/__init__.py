"""Network definitions that torchvision does not provide (the demo's EfficientNet-Lite0 and SmallCNN)."""
