"""Scenarios that score one model on one set's images, image by image (faithfulness, stability): the settings
and the planning they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bamkit.evaluate.legs import Leg, PlanContext
from bamkit.evaluate.scenarios.base import Scenario, ScenarioSettings

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class SingleSetSettings(ScenarioSettings):
    """One model on a seeded subset of one set.

    Args:
        model, set: the model and the images.
    """

    model: str = "f_o"
    set: str = "obj_scene"


class SingleSetScenario(Scenario):
    """Plans one leg: ``model`` on ``set``, computing :meth:`scores` per image."""

    def scores(self, suite: Suite) -> tuple[str, ...]:
        """What the leg computes per image (default: the suite's metrics of this scenario)."""
        return suite.metrics_of(self.name)

    def leg_modes(self, ctx: PlanContext) -> tuple[str, ...]:
        """The saliency modes the leg caches (default: those its metrics read)."""
        return ctx.modes(self.name)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        s = self.settings
        if not ctx.need(self.name, [s.model], [s.set]):
            return []
        rows = ctx.rows(s.set, s.split, s.max_images)
        scores = self.scores(ctx.suite)
        return [
            Leg(self.name, s.model, s.set, rows, rows, self.leg_modes(ctx), scores=scores, pool_pairs=rows)
        ]
