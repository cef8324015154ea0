"""The seed papers' per-image metrics on one model and set: RCAP, deletion / insertion AUC (GAG), AUPC and
AUTVC (SmoothTaylor), mutual information (Sampling matters), and localisation against the object mask (Dice,
MAE, pointing game). Each image is one "pair" of the tables; its value is the metric's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bamkit.evaluate.pairs import PairTable
from bamkit.evaluate.scenarios.base import register_scenario
from bamkit.evaluate.scenarios.single import SingleSetScenario, SingleSetSettings

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class FaithfulnessSettings(SingleSetSettings):
    """The images the per-image metrics score (their own settings are the metrics': ``{name: rcap,
    lower_bound: 50}``)."""

    max_images: int | None = 64


@register_scenario
class FaithfulnessScenario(SingleSetScenario):
    """The seed papers' per-image metrics, one row per image and metric."""

    name, Settings = "faithfulness", FaithfulnessSettings
    smoke_images = 4
    group = "Faithfulness and localisation (seed papers)"
    grid_title = "Faithfulness scenario input (RCAP / DAUC / IAUC)"
    report_parts = ("faithfulness",)

    def pairs(self, per_image: pd.DataFrame, suite: Suite, out: PairTable) -> None:
        """One row per image and metric: the image's value, included when the model is right and it is defined."""
        f = per_image[per_image["scenario"] == self.name]
        for m in suite.metrics_of(self.name):
            if m not in f or f.empty:
                continue
            v = f[m].to_numpy(float)
            out.parts.append(
                pd.DataFrame(
                    {
                        "scenario": self.name,
                        "metric": m,
                        "method": f["method"].to_numpy(),
                        "pair": f["pair"].to_numpy(),
                        "value": v,
                        "included": f["correct"].to_numpy(bool) & np.isfinite(v),
                    }
                )
            )
