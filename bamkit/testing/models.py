"""Tiny deterministic models for tests and CPU benchmarks.

* :class:`LinearImage` — logits = W · flatten(x) + b: its input gradient is the weight row, its IG
  ``(x − x') ⊙ w`` (closed forms for the engine tests).
* :class:`SmallCNN` — conv/BN/ReLU/max-pool/conv/BN/ReLU/avg-pool/fc, non-trivial BN statistics.
* :func:`tiny_resnet` — torchvision's ResNet structure (``conv1``, ``bn1``, ``relu``, ``maxpool``,
  ``layer1``…``layer4``, ``avgpool``, ``fc``; torchvision ``BasicBlock`` or ``Bottleneck`` blocks, the latter
  reusing one in-place ReLU three times like ResNet-50) at a small width, for 32 px inputs.

Every factory takes a ``seed`` and builds its weights from it without touching the global RNG, and returns the
model in eval mode.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


@contextlib.contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _randomise_bn(model: nn.Module, seed: int) -> None:
    """Give BatchNorm layers non-trivial running statistics and affine parameters (eval BN ≠ identity)."""
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


class LinearImage(nn.Module):
    """``logits = W · flatten(x) + b`` on (N,C,H,W) images."""

    def __init__(self, channels: int = 3, size: int = 8, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        with _seeded(seed):
            self.fc = nn.Linear(channels * size * size, classes)
        self.shape = (channels, size, size)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))

    def weight_image(self, c: int) -> torch.Tensor:
        """Row ``c`` of W as an image (C,H,W): the gradient of logit ``c``."""
        return self.fc.weight[c].detach().view(self.shape)


class SmallCNN(nn.Module):
    """A small CNN with ReLU, BatchNorm and max-pooling (N,C,H,W) -> (N, classes)."""

    def __init__(self, channels: int = 3, classes: int = 5, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        with _seeded(seed):
            self.features = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2 * width, classes)
        _randomise_bn(self, seed)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class TinyResNet(nn.Module):
    """torchvision's ResNet layout at a reduced width (``width`` channels in ``layer1``)."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        classes: int,
        width: int,
    ) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)  # 3×3 stem for 32 px inputs
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width * block.expansion, classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_resnet(
    classes: int = 5,
    width: int = 8,
    block: str = "basic",
    layers: tuple[int, int, int, int] = (1, 1, 1, 1),
    seed: int = 0,
) -> TinyResNet:
    """A torchvision-style ResNet for 32 px inputs (``block="bottleneck"`` reproduces ResNet-50's block)."""
    blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
    if block not in blocks:
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
    with _seeded(seed):
        model = TinyResNet(blocks[block], layers, classes, width)
    _randomise_bn(model, seed)
    return model.eval()


def images(n: int = 2, size: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """Smooth random normalised images (N,C,H,W): low-frequency patterns + noise, roughly ImageNet-scaled."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn((n, channels, 4, 4), generator=g)
    x = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return x + 0.3 * torch.randn((n, channels, size, size), generator=g)
