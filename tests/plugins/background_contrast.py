"""A researcher's own scenario and pair metrics, in one file outside ``bamkit/`` (listed under a suite's
``plugins:``): the test that adding a scenario and a metric needs no edit of the package.

* Scenario ``background``: f_s and f_o on the same X_{o,s} images, the region being everything *but* the
  object. The scene model should attribute more to the scene than the object model does.
* Metric ``background_mcs`` (declared into ``background``): G_bg(f_s) − G_bg(f_o), the model contrast score
  with the roles and the region swapped.
* Metric ``mcs_hit_rate`` (declared into the built-in ``mcs`` scenario): the share of pairs in which f_o gives
  the object more attribution than f_s does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bamkit.evaluate.legs import Leg, PlanContext
from bamkit.evaluate.scenarios import Scenario, ScenarioSettings, register_scenario
from bamkit.metrics import bam
from bamkit.metrics.functional import Score
from bamkit.metrics.registry import Metric, register


@dataclass(frozen=True)
class BackgroundSettings(ScenarioSettings):
    """The two models (scene model first) and the images they both see."""

    models: tuple[str, str] = ("f_s", "f_o")
    set: str = "obj_scene"


@register_scenario
class BackgroundScenario(Scenario):
    name, Settings = "background", BackgroundSettings
    group = "Background contrast (a plug-in scenario)"
    grid_title = "Background contrast: f_s above f_o, region = the scene around the object"

    def roles(self, suite):
        return tuple(self.settings.models)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        s = self.settings
        if not ctx.need(self.name, list(s.models), [s.set]):
            return []
        rows = ctx.rows(s.set, s.split, s.max_images)
        return [Leg(self.name, role, s.set, rows, rows, ctx.modes(self.name), pool_pairs=rows, region="background")
                for role in s.models]  # fmt: skip

    def members(self):
        s = self.settings
        return (s.models[0], s.set), (s.models[1], s.set)


@register
class BackgroundMCS(Metric):
    """G_bg(f_s) − G_bg(f_o) on the same images (higher: the scene model leans on the scene more)."""

    name, title, scenario, higher_is_better = "background_mcs", "Background MCS", "background", True
    requires, saliency, per = frozenset({"saliency_bam", "masks", "pair", "correct"}), "bam", "pair"
    function, per_pair = staticmethod(bam.mcs_score), staticmethod(bam.mcs_per_pair)


def hit_per_pair(g_model1: torch.Tensor, g_model2: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``1[g_c(f_o, x) > g_c(f_s, x) + margin]`` per pair."""
    return (g_model1 > g_model2 + margin).double()


def hit_rate(
    g_model1: torch.Tensor, g_model2: torch.Tensor, correct: torch.Tensor, margin: float = 0.0
) -> Score:
    """The share of both-correct pairs in which f_o's object attribution exceeds f_s's by more than ``margin``."""
    keep = correct & torch.isfinite(g_model1) & torch.isfinite(g_model2)
    n = int(keep.sum())
    value = float(hit_per_pair(g_model1, g_model2, margin)[keep].mean()) if n else float("nan")
    return Score(value, n, {"incorrect": int((~correct).sum())})


@register
class MCSHitRate(Metric):
    """Share of pairs where the object model attributes more to the object than the scene model."""

    name, scenario, higher_is_better = "mcs_hit_rate", "mcs", True
    title = "MCS hit rate (margin {margin:g})"
    requires, saliency, per = frozenset({"saliency_bam", "masks", "pair", "correct"}), "bam", "pair"
    function, per_pair, params = staticmethod(hit_rate), staticmethod(hit_per_pair), ("margin",)
