"""The scene-filter hook: drop scene images that already show a BAM object (BAM §3.1; docs/dataset.md#object-extraction).

The paper says such scenes were filtered; BAM's released script does not. ``kind: torchvision`` is the paper's
filter with torchvision's COCO Faster R-CNN (:mod:`bamkit.data.detector`; the paper recipe uses it when the
weights are on the machine, and is off with a one-line message otherwise); two other ways:

* ``kind: list`` with ``exclude_list: FILE`` — a text file with one scene image per line, as a path relative to
  the MiniPlaces root (``images/train/b/bedroom/00000012.jpg``), an absolute path, or a bare file name
  relative to its class folder (``bedroom/00000012.jpg``). Blank lines and ``#`` comments are ignored.
* ``kind: detector`` with ``detector: "module:callable"`` and ``threshold`` — bamkit imports the callable and
  calls it once per scene class as ``fn(images, objects) -> scores`` with ``images`` a list of (H, W, 3)
  uint8 RGB arrays and ``objects`` the recipe's COCO names; ``scores`` is an array (len(images),
  len(objects)) of detection confidences in [0, 1]. Scenes where any score reaches ``threshold`` are dropped.
  The user supplies the detector (e.g. a torchvision Faster R-CNN with their own weights).

Filtering happens before the source images are chosen, so the i-th scene of a class is the i-th *kept* file,
and "too few scenes" is reported with the counts after filtering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bamkit.data.recipe import SceneFilterSpec
from bamkit.errors import ConfigError, DataError
from bamkit.imports import import_object
from bamkit.provenance import file_hash

log = logging.getLogger(__name__)


class SceneFilter:
    """Decide which scene files of a class to keep. The base class keeps every file (BAM's code)."""

    def keep(
        self, scene: str, files: Sequence[Path], load: Callable[[Path], np.ndarray | None]
    ) -> list[Path]:
        """The files of class ``scene`` to keep, in their given (sorted) order.

        Args:
            scene: the class name; files: its candidate images, sorted.
            load: the reader's decoder (a detector needs pixels; returns None for a bad file).
        """
        return list(files)

    def describe(self) -> dict:
        """What was applied, for the file's provenance."""
        return {"kind": "none"}


class ListFilter(SceneFilter):
    """Drop the scene files named in a text file."""

    def __init__(self, exclude_list: Path, miniplaces_root: Path) -> None:
        if not Path(exclude_list).is_file():
            raise ConfigError(
                f"scene_filter.exclude_list: no file {str(exclude_list)!r}; pass a text file with one scene path per line"
            )
        self.path = Path(exclude_list)
        self.root = Path(miniplaces_root)
        lines = self.path.read_text(encoding="utf-8").splitlines()
        self.entries = {ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")}

    def _names(self, f: Path) -> set[str]:
        names = {str(f), f"{f.parent.name}/{f.name}"}
        try:
            names.add(str(f.relative_to(self.root)))
        except ValueError:
            pass
        return names

    def keep(
        self, scene: str, files: Sequence[Path], load: Callable[[Path], np.ndarray | None]
    ) -> list[Path]:
        return [f for f in files if not (self._names(Path(f)) & self.entries)]

    def describe(self) -> dict:
        return {"kind": "list", "exclude_list": str(self.path), "entries": len(self.entries)}


class DetectorFilter(SceneFilter):
    """Drop scene files where a detector (``fn(images, objects) -> scores``) finds one of the recipe's objects;
    the dropped files, with their scores, are recorded for the dataset's provenance."""

    def __init__(
        self, spec: str, objects: Sequence[str], threshold: float, fn: Callable | None = None
    ) -> None:
        if fn is None:
            fn = import_object(spec, "scene_filter.detector")
        self.fn = fn
        self.spec, self.objects, self.threshold = spec, list(objects), float(threshold)
        self.removed: dict[str, list[dict]] = {}

    def keep(
        self, scene: str, files: Sequence[Path], load: Callable[[Path], np.ndarray | None]
    ) -> list[Path]:
        kept: list[Path] = []
        batch = 64
        for start in range(0, len(files), batch):
            chunk = [Path(f) for f in files[start : start + batch]]
            images = [load(f) for f in chunk]
            good = [(f, im) for f, im in zip(chunk, images) if im is not None]
            if not good:
                continue
            scores = np.asarray(self.fn([im for _, im in good], self.objects), dtype=np.float64)
            if scores.shape != (len(good), len(self.objects)):
                raise DataError(
                    f"scene_filter.detector {self.spec!r} returned shape {scores.shape}, expected "
                    f"({len(good)}, {len(self.objects)}) scores in [0, 1]"
                )
            for (f, _), s in zip(good, scores):
                if (s >= self.threshold).any():
                    j = int(np.argmax(s))
                    self.removed.setdefault(scene, []).append(
                        {"file": f.name, "object": self.objects[j], "score": round(float(s[j]), 4)}
                    )
                else:
                    kept.append(f)
        return kept

    def describe(self) -> dict:
        return {
            "kind": "detector",
            "detector": self.spec,
            "weights_sha256": getattr(self, "weights_sha256", None),
            "threshold": self.threshold,
            "removed": self.removed,
            "n_removed": sum(len(v) for v in self.removed.values()),
        }


class OffFilter(SceneFilter):
    """A filter that was asked for but cannot run here (no detector weights): keeps everything, says why."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason

    def describe(self) -> dict:
        return {"kind": self.kind, "active": False, "reason": self.reason}


def make_filter(spec: SceneFilterSpec, miniplaces_root: Path, objects: Sequence[str]) -> SceneFilter:
    """The filter a recipe asks for (``kind: none`` keeps everything)."""
    if spec.kind == "list":
        return ListFilter(spec.exclude_list, miniplaces_root)
    if spec.kind == "detector":
        return DetectorFilter(spec.detector or "", objects, spec.threshold)
    if spec.kind == "torchvision":
        from bamkit.data import detector as D

        weights = D.find_weights(spec.weights)
        if weights is None:
            msg = D.off_message()
            log.warning("%s", msg)
            return OffFilter("torchvision", msg)
        det = D.TorchvisionDetector(weights)
        for o in objects:
            det.label_of(o)  # every recipe object must be a COCO category the detector knows
        f = DetectorFilter(f"torchvision fasterrcnn_resnet50_fpn ({weights})", objects, spec.threshold, det)
        f.weights_sha256 = file_hash(weights)
        return f
    return SceneFilter()
