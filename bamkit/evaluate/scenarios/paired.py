"""Scenarios whose pairs are one model on two sets, matched by ``pair_index``: IDR (an image with and without
the object) and IIR (an image with and without the δ patch). The settings and planning they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bamkit.evaluate.legs import Leg, PlanContext, matched
from bamkit.evaluate.scenarios.base import Scenario, ScenarioSettings

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class PairedSetsSettings(ScenarioSettings):
    """One model on ``set`` and on the paired rows of ``paired_set`` (same ``pair_index``).

    Args:
        model: the model both members go through.
        set, paired_set: member a's and member b's set.
    """

    model: str = ""
    set: str = ""
    paired_set: str = ""


class PairedSetsScenario(Scenario):
    """Plans member a (a seeded subset of ``set``) and member b (its pairs in ``paired_set``)."""

    random_baseline: bool = False  # whether the legs also score a random region
    fields_b: tuple[tuple[str, str, Any], ...] = ()  # per-row columns member b reads from its set

    def roles(self, suite: Suite) -> tuple[str, ...]:
        return (self.settings.model,)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        s = self.settings
        if not ctx.need(self.name, [s.model], [s.set, s.paired_set]):
            return []
        va, vb = ctx.bam[s.set], ctx.bam[s.paired_set]
        rows_a, rows_b, pairs = matched(va, ctx.rows(s.set, s.split, s.max_images), vb)
        order = np.argsort(rows_b, kind="stable")
        common = dict(modes=ctx.modes(self.name), random_baseline=self.random_baseline, pool_pairs=pairs,
                      pair_key="pair_index")  # fmt: skip
        return [
            Leg(self.name, s.model, s.set, rows_a, pairs, **common),
            Leg(
                self.name, s.model, s.paired_set, rows_b[order], pairs[order], fields=self.fields_b, **common
            ),
        ]

    def members(self) -> tuple[tuple[str, str], tuple[str, str]]:
        s = self.settings
        return (s.model, s.set), (s.model, s.paired_set)
