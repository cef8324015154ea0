"""The scene-filter hook: drop scene images that already show a BAM object (BAM §3.1; SPEC §4.2).

The paper says such scenes were filtered; BAM's released script does not filter, and no detector weights can be
fetched here, so the filter is **off by default** (``scene_filter: {kind: none}``). Two ways to turn it on:

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

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bamkit.data.recipe import SceneFilterSpec
from bamkit.errors import ConfigError, DataError


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
    """Drop scene files where a user-supplied detector finds one of the recipe's objects."""

    def __init__(self, spec: str, objects: Sequence[str], threshold: float) -> None:
        module, _, attr = spec.partition(":")
        try:
            self.fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(
                f"scene_filter.detector: cannot import {spec!r} ({e}); expected 'module:callable'"
            ) from None
        self.spec, self.objects, self.threshold = spec, list(objects), float(threshold)

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
            kept.extend(f for (f, _), s in zip(good, scores) if not (s >= self.threshold).any())
        return kept

    def describe(self) -> dict:
        return {"kind": "detector", "detector": self.spec, "threshold": self.threshold}


def make_filter(spec: SceneFilterSpec, miniplaces_root: Path, objects: Sequence[str]) -> SceneFilter:
    """The filter a recipe asks for (``kind: none`` keeps everything)."""
    if spec.kind == "list":
        return ListFilter(spec.exclude_list, miniplaces_root)
    if spec.kind == "detector":
        return DetectorFilter(spec.detector or "", objects, spec.threshold)
    return SceneFilter()
