"""The BAM ground-truth classifiers: the network factory over the network registry and the self-describing
checkpoint loader.

BAM (Yang & Kim 2019, App. D) fine-tunes an ImageNet ResNet-50 on each BAM set. bamkit builds any registered
network (:data:`bamkit.nets.NETWORKS`: ``resnet50``, ``resnet18``, ``efficientnet_lite0``, ``small_cnn``).
:func:`load_classifier` turns a checkpoint written by ``bamkit train`` back into a plain eval-mode module plus
the metadata the later stages need (classes, preprocessing, training set, data hash).
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
from bamkit.nets import network
from bamkit.preprocess import Preprocess
from bamkit.provenance import file_hash

CHECKPOINT_FORMAT = "bamkit-classifier"
CHECKPOINT_VERSION = 1


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
    """The input normalisation an architecture's pretrained weights expect (its registry entry says)."""
    return network(arch).preprocess(input_size)


def network_kwargs(net: nn.Module) -> dict:
    """The constructor choices a state_dict cannot tell apart (parameter-free layers), for checkpoints."""
    return dict(getattr(net, "constructor_kwargs", {}))


def build_network(arch: str, num_classes: int, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """A classifier with a fresh ``num_classes``-way head (BAM fine-tunes every layer, App. D).

    Args:
        arch: a registered network (:data:`bamkit.nets.NETWORKS`) or ``package.module:NETWORK``.
        num_classes: size of the new head (10 for every BAM model).
        weights: a named checkpoint the network knows (``"imagenet"``, ``"imagenet_v2"``), a local state-dict
            path (every parameter but the head that fits is loaded), or ``None``/``"none"``.
        kwargs: the network's own constructor choices (``small_cnn``: ``width``, ``pool``); others ignore them.

    Returns:
        An ``nn.Module`` mapping normalised (N, 3, S, S) inputs to (N, num_classes) logits.
    """
    net_entry = network(arch)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    w = None if weights in (None, "", "none") else str(weights)
    named = w if w in net_entry.weights else None
    if w is not None and named is None and w in ("imagenet", "imagenet_v2"):
        have = ", ".join(net_entry.weights) or "none"
        raise ConfigError(
            f"model.weights: {arch} has no {w!r} checkpoint (named ones: {have}); use a local file or none"
        )
    net = net_entry.build(num_classes, named, **kwargs)
    if w is not None and named is None:
        _load_backbone_file(net, Path(w))
    return net


@dataclass(frozen=True)
class ClassifierMeta:
    """What a bamkit checkpoint says about its model.

    Attributes:
        name: model name (``"f_o"``, ``"f_s"``, ``"f_empty"``, ``"f_k0.1"`` …).
        arch: the registered network (:data:`bamkit.nets.NETWORKS`).
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
