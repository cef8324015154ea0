"""Input independence rate (BAM §4.4, Fig. 10) and App. C's relative attribution change: f_∅ on a scene-only
image x and on x + δ, where δ is a dog-shaped patch that leaves the model's output unchanged (``bamkit
delta``); the region is δ's. Only pairs whose δ passed its functional test are scored, the others counted."""

from __future__ import annotations

from dataclasses import dataclass

from bamkit.evaluate.legs import Split
from bamkit.evaluate.scenarios.base import register_scenario
from bamkit.evaluate.scenarios.paired import PairedSetsScenario, PairedSetsSettings


@dataclass(frozen=True)
class IIRSettings(PairedSetsSettings):
    """IIR: ``model`` on ``set`` (x) and ``paired_set`` (x + δ, the δ file's set)."""

    split: Split = "all"
    model: str = "f_empty"
    set: str = "bamboo_forest"
    paired_set: str = "bamboo_forest_patch"


@register_scenario
class IIRScenario(PairedSetsScenario):
    """BAM §4.4: does the region's attribution stay put when an insignificant patch δ is added?"""

    name, Settings = "iir", IIRSettings
    smoke_images = 8
    grid_title = "IIR: f_∅ on x and x + δ (the patch inside the dog's mask) — BAM Fig. 9"
    # BAM §4.4: the δ stage flags every patched row (failures are kept in the file, flagged, never dropped)
    fields_b = (("delta_passed", "passed", True),)
