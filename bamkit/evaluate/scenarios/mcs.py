"""Model contrast score (BAM §4.2, Fig. 4): f_o and f_s on the same X_{o,s} images, object masks; and the
random-region baseline (the same contrast with another image's object mask at a random place)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bamkit.evaluate.legs import Leg, PlanContext
from bamkit.evaluate.scenarios.base import RandomRegionSettings, Scenario, register_scenario

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class MCSSettings(RandomRegionSettings):
    """MCS: ``models`` = (the model the object matters to, the one it does not), both on ``set``.

    Args:
        models: f_o and f_s.
        set: the images both models see (X_{o,s}).
    """

    models: tuple[str, str] = ("f_o", "f_s")
    set: str = "obj_scene"


@register_scenario
class MCSScenario(Scenario):
    """BAM §4.2: G_c(f_o) − G_c(f_s) over the same images; the object matters to f_o only."""

    name, Settings = "mcs", MCSSettings
    grid_title = "MCS: the same image under f_o (object model) and f_s (scene model) — BAM Fig. 3"

    def roles(self, suite: Suite) -> tuple[str, ...]:
        return tuple(self.settings.models)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        s = self.settings
        if not ctx.need(self.name, list(s.models), [s.set]):
            return []
        rows = ctx.rows(s.set, s.split, s.max_images)
        modes = ctx.modes(self.name)
        return [
            Leg(self.name, role, s.set, rows, rows, modes, random_baseline=s.random_baseline, pool_pairs=rows)
            for role in s.models
        ]

    def members(self) -> tuple[tuple[str, str], tuple[str, str]]:
        s = self.settings
        return (s.models[0], s.set), (s.models[1], s.set)
