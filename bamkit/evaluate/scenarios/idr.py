"""Input dependence rate (BAM §4.3, Fig. 8): f_s on an X_{o,s} image and on the same scene without the object
(X_{∅,s}), the object's region in both; and the random-region baseline (≈ 50 %)."""

from __future__ import annotations

from dataclasses import dataclass

from bamkit.evaluate.scenarios.base import RandomRegionSettings, register_scenario
from bamkit.evaluate.scenarios.paired import PairedSetsScenario, PairedSetsSettings


@dataclass(frozen=True)
class IDRSettings(PairedSetsSettings, RandomRegionSettings):
    """IDR: ``model`` on ``set`` (with the object) and ``paired_set`` (without it)."""

    model: str = "f_s"
    set: str = "obj_scene"
    paired_set: str = "scene_only"


@register_scenario
class IDRScenario(PairedSetsScenario):
    """BAM §4.3: does f_s attribute less to the region when the (unimportant) object covers it?"""

    name, Settings = "idr", IDRSettings
    grid_title = "IDR: f_s on the image with and without the object — BAM Fig. 7"

    @property
    def random_baseline(self) -> bool:  # type: ignore[override]
        return self.settings.random_baseline
