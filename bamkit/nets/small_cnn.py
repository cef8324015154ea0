"""SmallCNN: a small all-convolutional classifier for quick 64 px experiments (not part of BAM; a bamkit
addition, trained from scratch)."""

from __future__ import annotations

import torch
from torch import nn

from bamkit.errors import ConfigError


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    # A fresh ReLU per call site: guided backprop and LRP hook each activation module once, so a shared
    # ReLU instance would mix the backward rules of different layers.
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCNN(nn.Module):
    """A small all-convolutional classifier for the 64 px demo (not part of BAM; a bamkit addition).

    Four stages of two 3x3 conv-BN-ReLU blocks, each stage halving the resolution, then global pooling and a
    linear head, laid out like torchvision's ResNet (``layer1`` … ``layer4``, ``pool``, ``fc``) so the
    attribution defaults (GradCAM's ``layer4``) apply unchanged.

    The BAM models built by :func:`bamkit.models.build_network` (hence ``bamkit train`` and
    :func:`bamkit.models.load_classifier`) use global *max* pooling. Trained from scratch on a few thousand
    images, an average-pooled head sums evidence over the whole frame, so an input whose background it never saw
    (BAM's uniform gray X_{o,g}) is dominated by the background's area (docs/reproduction.md#performance-notes
    has the accuracies); a max-pooled head asks whether each feature is present *anywhere*, so a salient object
    is not outvoted by a large unfamiliar background. ImageNet-pretrained ResNets (BAM §3.3) do not need this. The
    class default ``pool="avg"`` is the torchvision-style head (for direct use, e.g. test fixtures).

    Args:
        num_classes: number of output logits.
        width: channels of ``layer1``; stages use ``width · (1, 2, 4, 8)``.
        pool: ``"avg"`` (default) or ``"max"`` global pooling before ``fc``.

    Shape:
        input (N, 3, S, S) normalised pixels (S ≥ 16) -> logits (N, num_classes).
    """

    def __init__(self, num_classes: int, width: int = 16, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise ConfigError(f"SmallCNN pool must be 'max' or 'avg', got {pool!r}")
        self.width, self.pool_mode = width, pool
        w = (width, 2 * width, 4 * width, 8 * width)
        self.stem = nn.Sequential(*_conv_bn_relu(3, w[0], 1))
        c_in = w[0]
        for i, c in enumerate(w, start=1):
            setattr(self, f"layer{i}", nn.Sequential(*_conv_bn_relu(c_in, c, 2), *_conv_bn_relu(c, c, 1)))
            c_in = c
        self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    @property
    def constructor_kwargs(self) -> dict:
        """The choices a state_dict cannot tell apart (pooling is parameter-free), recorded in checkpoints."""
        return {"width": self.width, "pool": self.pool_mode}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_small_cnn(
    num_classes: int, weights: str | None, width: int = 16, pool: str = "max", **_: object
) -> nn.Module:
    """The registry's builder: max pooling by default (robust to backgrounds the model never saw, see
    :class:`SmallCNN`; every demo-era checkpoint has it). There are no pretrained weights."""
    return SmallCNN(num_classes, width=width, pool=pool)
