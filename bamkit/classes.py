"""The BAM classes and the source datasets' identifiers for them (BAM §3.1; docs/dataset.md#classes-and-sources)."""

from __future__ import annotations

import typing
from typing import Literal

# The two label columns of a dataset file: what a BAM model is trained on (f_o: objects, every other: scenes).
LabelField = Literal["object_label", "scene_label"]
LABEL_FIELDS: tuple[str, ...] = typing.get_args(LabelField)

# Sorted names give the label index, as in BAM's constructor (backpack 0 ... zebra 9).
# COCO spells "stop sign" with a space; BAM's code used "stop_sign", which pycocotools does not know (docs/dataset.md#object-extraction).
BAM_OBJECTS: tuple[str, ...] = (
    "backpack",
    "bird",
    "dog",
    "elephant",
    "kite",
    "pizza",
    "stop sign",
    "toilet",
    "truck",
    "zebra",
)
# COCO 2017 category ids of the BAM objects.
COCO_IDS: dict[str, int] = {
    "truck": 8,
    "stop sign": 13,
    "bird": 16,
    "dog": 18,
    "elephant": 22,
    "zebra": 24,
    "backpack": 27,
    "kite": 38,
    "pizza": 59,
    "toilet": 70,
}
# MiniPlaces category names ("track/outdoor" is nested) and their official indices.
BAM_SCENES: tuple[str, ...] = (
    "bamboo_forest",
    "bedroom",
    "bowling_alley",
    "bus_interior",
    "cockpit",
    "corn_field",
    "laundromat",
    "runway",
    "ski_slope",
    "track/outdoor",
)
MINIPLACES_IDS: dict[str, int] = {
    "bamboo_forest": 12,
    "bedroom": 18,
    "bowling_alley": 22,
    "bus_interior": 25,
    "cockpit": 36,
    "corn_field": 40,
    "laundromat": 60,
    "runway": 81,
    "ski_slope": 84,
    "track/outdoor": 95,
}
COMMON_FEATURE = "dog"  # the object pasted into the commonality-k sets (BAM §3.2)
ALWAYS_SCENE = "bamboo_forest"  # the scene class that always carries the dog in X^k
