"""Planted ground truth for the evaluate stage and report tests: a tiny BAM-layout file and linear models
whose gradients are known maps, so metric values are known in closed form.

* Every object sits inside the central square ``[S/4, 3S/4)²``; scenes are dark noise, objects bright.
* :class:`PlantedLinear` has logit 0 = Σ w ⊙ x + bias and logits 1.. = 0, with a bias large enough that
  class 0 is always predicted: its input gradient is ``w`` on every channel, whatever the input.
* ``center`` models (f_o, f_k0.1) weigh only the central square, ``border`` models (f_s, f_empty, f_k1.0)
  only the outside. So with Vanilla Gradient: g_c(f_o) = 1, g_c(f_s) = 0, MCS = 1, IDR = 0 (equal maps,
  strict inequality), IIR = 1 when the patched set equals the original.
* Labels are 0 except every 5th row (label 1): those rows are misclassified and must be filtered out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bamkit.classes import BAM_OBJECTS, BAM_SCENES
from bamkit.preprocess import Preprocess


class PlantedLinear(nn.Module):
    """Linear logit 0 with a fixed spatial weight map; always predicts class 0.

    Args:
        weight: (S, S) spatial weights, shared by the 3 channels.
        num_classes: logits returned.
    """

    def __init__(self, weight: torch.Tensor, num_classes: int = 10, bias: float = 50.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.float().clone())
        self.bias = bias
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.weight).sum(dim=(1, 2, 3)) * 0.01 + self.bias
        return torch.cat([z[:, None], x.new_zeros(x.shape[0], self.num_classes - 1)], dim=1)


def center_weight(size: int) -> torch.Tensor:
    w = torch.zeros(size, size)
    q = size // 4
    w[q : size - q, q : size - q] = 1.0
    return w


def planted_models(size: int, roles: tuple[str, ...] = ("f_o", "f_s", "f_empty", "f_k0.1", "f_k1.0")) -> dict:
    """role -> (model, ClassifierMeta) for the planted models."""
    from bamkit.models import ClassifierMeta

    out = {}
    for role in roles:
        center = role in ("f_o", "f_k0.1")
        w = center_weight(size) if center else 1.0 - center_weight(size)
        field = "object_label" if role == "f_o" else "scene_label"
        names = BAM_OBJECTS if role == "f_o" else BAM_SCENES
        h = hashlib.sha256(f"{role}:{center}:{size}".encode()).hexdigest()
        meta = ClassifierMeta(
            name=role,
            arch="planted_linear",
            class_names=tuple(names),
            label_field=field,
            train_set="obj_scene",
            preprocess=Preprocess(input_size=size),
            data_hash="planted",
            checkpoint_hash=h,
        )
        out[role] = (PlantedLinear(w).eval(), meta)
    return out


def write_planted_file(
    path: str | Path,
    n_pairs: int = 20,
    size: int = 16,
    seed: int = 0,
    patch_shift: int = 0,
    delta_failed: tuple[int, ...] | None = None,
) -> Path:
    """A BAM-layout file with ``obj_scene``, ``scene_only``, ``dog_bedroom``, ``bamboo_forest`` and
    ``bamboo_forest_patch`` (the bamboo images, brightened by ``patch_shift`` inside the mask). With
    ``delta_failed``, the patch set carries δ's ``passed`` flags, false at those rows."""
    from bamkit.data.h5_write import create_file, write_set

    rng = np.random.default_rng(seed)
    q = size // 4
    scenes = rng.integers(0, 60, size=(n_pairs, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n_pairs, size, size), dtype=bool)
    boxes = np.zeros((n_pairs, 4), dtype=np.int32)
    for i in range(n_pairs):
        h, w = rng.integers(2, size // 2 + 1, size=2)
        y0 = rng.integers(q, size - q - h + 1)
        x0 = rng.integers(q, size - q - w + 1)
        masks[i, y0 : y0 + h, x0 : x0 + w] = True
        boxes[i] = (y0, x0, y0 + h, x0 + w)
    composite = scenes.copy()
    composite[masks] = 230
    label = np.where(np.arange(n_pairs) % 5 == 4, 1, 0).astype(np.int16)
    split = (np.arange(n_pairs) >= n_pairs // 4).astype(np.uint8)  # the first quarter is "train"
    pair = np.arange(n_pairs, dtype=np.int32)
    base = {"boxes": boxes, "split": split, "pair_index": pair}
    sets = {
        "obj_scene": {
            "images": composite,
            "masks": masks,
            "object_label": label,
            "scene_label": label,
            **base,
        },
        "scene_only": {
            "images": scenes,
            "masks": masks,
            "object_label": np.full(n_pairs, -1, np.int16),
            "scene_label": label,
            **base,
        },
    }
    sub = np.arange(0, n_pairs, 2)
    sets["dog_bedroom"] = {k: v[sub] for k, v in sets["obj_scene"].items()}
    sets["bamboo_forest"] = {k: v[sub] for k, v in sets["scene_only"].items()}
    patched = sets["bamboo_forest"]["images"].copy()
    m = sets["bamboo_forest"]["masks"]
    patched[m] = np.clip(patched[m].astype(int) + patch_shift, 0, 255).astype(np.uint8)
    sets["bamboo_forest_patch"] = {**sets["bamboo_forest"], "images": patched}

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    f = create_file(p, list(BAM_OBJECTS), list(BAM_SCENES), size, attrs={"seed": seed})
    try:
        for name, arrays in sets.items():
            write_set(f, name, arrays)
        if delta_failed is not None:  # δ's per-row verdict, as bamkit delta stores it beside the images
            passed = np.ones(len(sub), bool)
            passed[list(delta_failed)] = False
            f["bamboo_forest_patch"].create_dataset("passed", data=passed)
    finally:
        f.close()
    return p
