"""What the synthetic COCO and MiniPlaces writers share: their sizes (:data:`SCALES`), the per-item seeded
random streams and the metadata-free JPEG encoding that make the files byte-reproducible."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

JPEG_QUALITY = 90
MARKER = "synth.json"  # written last; marks a folder as bamkit-generated (safe to regenerate)
CORRUPT_KINDS = ("missing", "truncated", "not_image")


@dataclass(frozen=True)
class SynthScale:
    """Sizes of one synthetic source tree.

    Attributes:
        objects_per_class: usable COCO images per BAM object (each with one intended instance).
        distractor_images: COCO images with only distractor categories (person, car, chair).
        scenes_train: MiniPlaces train images per BAM scene.
        scenes_val: MiniPlaces val images per BAM scene.
        distractor_scenes: train (and val) images per distractor scene category.
    """

    objects_per_class: int
    distractor_images: int
    scenes_train: int
    scenes_val: int
    distractor_scenes: int


SCALES: dict[str, SynthScale] = {
    "tiny": SynthScale(
        objects_per_class=12, distractor_images=3, scenes_train=12, scenes_val=3, distractor_scenes=2
    ),
    "demo": SynthScale(
        # 200 objects and 200 scenes per class: every pair of the demo recipe uses 200 of each, as BAM uses all
        # 1,000 scenes of a class in each of its pairs and its X^k sets
        objects_per_class=200,
        distractor_images=16,
        scenes_train=200,
        scenes_val=12,
        distractor_scenes=6,
    ),
}

# Kinds of seeded streams, so that e.g. object image 5 and scene image 5 never share random numbers.
OBJ, SCENE, IDS, DISTRACT, LAYOUT = 1, 2, 3, 4, 5


def rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def jpeg(rgb: np.ndarray, gray: bool = False) -> bytes:
    img = Image.fromarray(rgb)
    if gray:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)  # no EXIF, no timestamps: deterministic bytes
    return buf.getvalue()
