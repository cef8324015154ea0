"""Real-format data sources for the BAM dataset (BAM §3.1; docs/dataset.md#classes-and-sources).

* :class:`~bamkit.sources.coco.CocoObjects` — BAM object cut-outs from a COCO instances file (pycocotools);
* :class:`~bamkit.sources.miniplaces.MiniPlaces` — scene images from MiniPlaces or a folder-per-class tree;
* :class:`~bamkit.sources.skips.SkipCounter` — bad source files are skipped and counted, never dropped silently;
* :func:`bamkit.sources.synth.write_sources` — synthetic sources in both real formats (demo and tests).
"""

from bamkit.sources.coco import CocoObjects, ObjectCutout
from bamkit.sources.miniplaces import MiniPlaces
from bamkit.sources.skips import SkipCounter

__all__ = ["CocoObjects", "MiniPlaces", "ObjectCutout", "SkipCounter"]
