"""The scene filter's built-in detector: torchvision's COCO-trained Faster R-CNN (ResNet-50 FPN), as a callable
``detector(images, objects) -> scores`` for :class:`bamkit.data.filters.DetectorFilter` (BAM §3.1: "no scenes
originally have dogs").

The weights are never downloaded by bamkit: they are read from a local file (``scene_filter.weights: PATH``) or,
with ``weights: auto``, from torch's hub cache where torchvision keeps them once a user has downloaded them
(``$TORCH_HOME/hub/checkpoints/<file>``). When neither is there the filter is off, and the build says so in one
line and in the file's provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bamkit.errors import ConfigError


def default_weights() -> tuple[Any, Path]:
    """torchvision's COCO weights enum member and where torch's hub cache keeps its file."""
    import torch
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    w = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    return w, Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name


def find_weights(weights: str | Path | None) -> Path | None:
    """The weight file to use: an explicit path (a ConfigError when it does not exist), or for ``auto``/None the
    hub cache's file when present, else None (the filter is off)."""
    if weights not in (None, "auto"):
        p = Path(weights).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"scene_filter.weights: {str(p)!r} is not a file; point it at Faster R-CNN ResNet-50 FPN COCO "
                "weights (torchvision's fasterrcnn_resnet50_fpn_coco-*.pth) or use 'auto'"
            )
        return p
    _, cached = default_weights()
    return cached if cached.is_file() else None


def off_message() -> str:
    """What the build prints when ``weights: auto`` finds no weights."""
    _, cached = default_weights()
    return (
        f"scene filter off: no Faster R-CNN COCO weights at {cached}; to filter scenes that already show a BAM "
        "object (as the paper did), download them on a connected machine (torchvision.models.detection."
        "fasterrcnn_resnet50_fpn(weights='COCO_V1')) or set scene_filter.weights: PATH in the recipe"
    )


class TorchvisionDetector:
    """Faster R-CNN ResNet-50 FPN (COCO); ``self(images, objects)`` -> (len(images), len(objects)) scores: the
    highest confidence of any detection of each object class in each image (0 where none).

    Args:
        weights: a weight file (a state dict of ``fasterrcnn_resnet50_fpn``).
        device: where the detector runs.
        min_size: the shorter side images are resized to (torchvision default 800; scenes are 128 px).
    """

    def __init__(self, weights: Path, device: str = "cpu", min_size: int = 512) -> None:
        import torch
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        w, _ = default_weights()
        self.categories = list(w.meta["categories"])
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.model = fasterrcnn_resnet50_fpn(
                weights=None, weights_backbone=None, num_classes=len(self.categories), min_size=min_size
            )
            self.model.load_state_dict(state)
        except Exception as e:  # a wrong or corrupt file: say which and why, in one line
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ConfigError(
                f"scene_filter.weights: cannot load {str(weights)!r} as Faster R-CNN ResNet-50 FPN COCO weights "
                f"({type(e).__name__}: {first})"
            ) from None
        self.model.eval().to(device)
        self.device = device
        self.weights = str(weights)

    def label_of(self, name: str) -> int:
        if name not in self.categories:
            raise ConfigError(
                f"scene filter: COCO has no category {name!r}; the detector knows {self.categories}"
            )
        return self.categories.index(name)

    def __call__(self, images: Sequence[np.ndarray], objects: Sequence[str]) -> np.ndarray:
        import torch

        labels = [self.label_of(o) for o in objects]
        batch = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float().div(255).to(self.device)
                 for im in images]  # fmt: skip
        with torch.inference_mode():
            dets = self.model(batch)
        out = np.zeros((len(images), len(objects)))
        for i, d in enumerate(dets):
            lab, sc = d["labels"].cpu().numpy(), d["scores"].cpu().numpy()
            for j, k in enumerate(labels):
                hit = sc[lab == k]
                out[i, j] = float(hit.max()) if hit.size else 0.0
        return out
