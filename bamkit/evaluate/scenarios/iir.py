"""Input independence rate (BAM §4.4, Fig. 10) and App. C's relative attribution change: f_∅ on a scene-only
image x and on x + δ, where δ is a dog-shaped patch that leaves the model's output unchanged (``bamkit
delta``); the region is δ's. Only pairs whose δ passed its functional test are scored, the others counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bamkit.evaluate.legs import Split
from bamkit.evaluate.pairs import legs_of
from bamkit.evaluate.scenarios.base import SummaryContext, register_scenario
from bamkit.evaluate.scenarios.paired import PairedSetsScenario, PairedSetsSettings
from bamkit.metrics.chance import attribution_change_chance, iir_chance


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

    def summary(self, ctx: SummaryContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """What chance scores here (:mod:`bamkit.metrics.chance`): an input-independent map gets IIR 1 and a change
        of 0; a map drawn afresh per input gets the values for the regions of the pairs scored (the report prints
        them beside the metrics, so that a high IIR is not read as a good method)."""
        s, pi = self.settings, ctx.per_image
        x = legs_of(pi, self.name, s.model, s.set) if len(pi) and "region_px" in pi else pi.iloc[0:0]
        x = (
            x.dropna(subset=["region_px"]) if len(x) else x
        )  # rows of results written before the column existed
        if x.empty:
            return [], {}
        scored = ctx.pairs.frame
        keep = scored[(scored["scenario"] == self.name) & scored["included"]]["pair"].unique()
        areas = x.drop_duplicates("pair").set_index("pair").reindex(keep)["region_px"].dropna().astype(int)
        t = ctx.suite.metric_params("iir").get("t", 0.1) if ctx.suite.computes("iir") else 0.1
        return [], {
            "iir_chance": {
                "pairs": int(len(areas)),
                "t": t,
                "constant": {"iir": 1.0, "attribution_change": 0.0},
                "independent_random": {"iir": iir_chance(areas.tolist(), t),
                                       "attribution_change": attribution_change_chance(areas.tolist())},
            }
        }  # fmt: skip
