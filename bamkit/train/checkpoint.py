"""Self-describing bamkit checkpoints: ``<out>/<name>.ckpt`` + the resolved config ``<out>/<name>.yaml``.

The checkpoint holds only tensors and plain containers (``torch.load(weights_only=True)``-safe): the network's
``state_dict`` and a ``meta`` dict (name, arch, class names, label field, training set, preprocessing, config,
config hash, data hash, versions, validation accuracy). :func:`bamkit.models.load_classifier` reads it back.
Lightning's own resumable checkpoints (``best``/``last``) stay in ``<out>/<name>/``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bamkit import atomic
from bamkit.config import dump_yaml
from bamkit.data.h5 import BamFile
from bamkit.errors import DataError
from bamkit.models import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    network_kwargs,
    preprocess_for,
    read_checkpoint,
)
from bamkit.provenance import json_hash, versions
from bamkit.train.config import TrainConfig

# Fields that decide what a model learns; masks/boxes/pair_index do not (δ patches appended later leave these
# sets untouched, so they do not invalidate trained models).
HASHED_FIELDS = ("images", "split")


def config_hash(cfg: TrainConfig) -> str:
    """Hash of what determines the weights: the resolved config minus where files go."""
    d = cfg.smoke_applied().to_dict()
    d.pop("out", None)
    d["data"].pop("path", None)
    d["data"].pop("num_workers", None)  # the loader is deterministic whatever the worker count
    return json_hash(d)


def set_hash(path: str | Path, set_name: str, label_field: str, rows_per_read: int = 1024) -> str:
    """sha256 over a set's images, split and labels (streamed in row blocks: bounded memory).

    Cached in the file's process-wide memo by (path, size, mtime, set, field), so a sweep hashes each set once.
    """
    import hashlib

    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns, set_name, label_field)
    if key in _HASH_MEMO:
        return _HASH_MEMO[key]
    with BamFile(p) as bf:
        view = bf[set_name]
        h = hashlib.sha256()
        h.update(json.dumps([set_name, label_field, len(view), bf.object_classes, bf.scene_classes]).encode())
        for field in (*HASHED_FIELDS, label_field):
            for lo in range(0, len(view), rows_per_read):
                h.update(np.ascontiguousarray(view.read(field, slice(lo, lo + rows_per_read))).tobytes())
    _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


_HASH_MEMO: dict[tuple, str] = {}


def export(
    net: nn.Module,
    cfg: TrainConfig,
    class_names: list[str],
    out_dir: str | Path,
    data_hash: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<out>/<name>.ckpt`` (atomically) and ``<out>/<name>.yaml`` beside it.

    Args:
        net: the trained network (its weights are copied to CPU float32).
        cfg: the training config (the resolved one is stored).
        class_names: label names, index = logit.
        out_dir: destination folder.
        data_hash: :func:`set_hash` of the training set.
        extra: more plain metadata (validation accuracy, epochs run …).

    Returns:
        the checkpoint path.
    """
    run = cfg.smoke_applied()
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    meta = {
        "name": run.name,
        "arch": run.model.arch,
        "arch_kwargs": network_kwargs(net),
        "class_names": list(class_names),
        "label_field": run.data.label_field,
        "train_set": run.data.train_set,
        "preprocess": preprocess_for(run.model.arch, run.model.input_size).to_dict(),
        "config": run.to_dict(),
        "config_hash": config_hash(cfg),
        "data_hash": data_hash,
        "versions": versions(),
        **(extra or {}),
    }
    obj = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "state_dict": state,
        "meta": meta,
    }
    buf = io.BytesIO()
    torch.save(obj, buf)
    out = Path(out_dir)
    path = out / f"{run.name}.ckpt"
    atomic.write_bytes(path, buf.getvalue())
    atomic.write_text(out / f"{run.name}.yaml", dump_yaml(run))
    return path


def is_current(path: str | Path, cfg: TrainConfig, data_hash: str) -> bool:
    """Whether ``path`` is a readable bamkit checkpoint for this config and this training data."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        meta = read_checkpoint(p)["meta"]
    except DataError:  # an unreadable file is simply stale: it will be retrained and replaced
        return False
    return meta.get("config_hash") == config_hash(cfg) and meta.get("data_hash") == data_hash
