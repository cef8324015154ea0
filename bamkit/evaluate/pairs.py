"""Per-pair metric values from the legs' per-image rows, computed by the functions the metric registry holds.

For a pair metric the two members' column (``g_c``, or ``g_c_random``) are joined on (method, pair) and
handed to the metric's ``per_pair`` function (the rows of ``per_pair.csv``) and to its ``function`` (the
leaderboard value with its sample size, a :class:`~bamkit.metrics.functional.Score`). Every pair is kept only
when both members are correctly classified (BAM's code takes the intersection; docs/conventions.md) and its
value is defined. The scenarios (:mod:`bamkit.evaluate.scenarios`) say which legs are a pair's members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from bamkit.metrics.functional import Score
from bamkit.metrics.registry import METRICS

COLUMNS = ["scenario", "metric", "method", "pair", "value", "included"]


@dataclass
class PairTable:
    """The long per-pair table and, for the pair metrics, the registry function's score per method.

    Attributes:
        frame: columns :data:`COLUMNS`.
        scores: (metric, method) -> Score from the metric's registered ``function``.
        excluded_delta: scenario -> method -> pairs left out because their δ failed the functional test
            (IIR and App. C).
    """

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    scores: dict[tuple[str, str], Score] = field(default_factory=dict)
    excluded_delta: dict[str, dict[str, int]] = field(default_factory=dict)
    parts: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def finish(self) -> PairTable:
        """Concatenate the collected parts into :attr:`frame`."""
        if self.parts:
            self.frame = pd.concat(self.parts, ignore_index=True)
        self.parts = []
        return self


def legs_of(per_image: pd.DataFrame, scenario: str, role: str, set_name: str) -> pd.DataFrame:
    d = per_image
    return d[(d["scenario"] == scenario) & (d["model"] == role) & (d["set"] == set_name)]


def join(a: pd.DataFrame, b: pd.DataFrame, col: str) -> pd.DataFrame:
    """Members a and b of each (method, pair): ``<col>_a``, ``<col>_b``, ``correct_a``, ``correct_b`` (and
    ``delta_passed`` when member b is a δ-patched image)."""
    keys = ["method", "pair"]
    cols = [*keys, col, "correct"]
    extra = ["delta_passed"] if "delta_passed" in b and b["delta_passed"].notna().any() else []
    return a[cols].merge(b[cols + extra], on=keys, suffixes=("_a", "_b"))


def pair_metric(
    name: str, j: pd.DataFrame, col: str, scenario: str, out: PairTable, label: str | None = None, **kw: Any
) -> None:
    """Add metric ``name`` over the joined members ``j`` to ``out``: per-pair values by the metric's ``per_pair``
    function, one score per method by its ``function`` (``kw``: the metric's parameters). A metric that is not
    scored per pair (relative MCS: over all k at once) adds its pairs only."""
    cls = METRICS.get(name)
    per_pair = cls.per_pair
    a = torch.tensor(j[f"{col}_a"].to_numpy(float))
    b = torch.tensor(j[f"{col}_b"].to_numpy(float))
    correct = torch.tensor((j["correct_a"] & j["correct_b"]).to_numpy(bool))
    if "delta_passed" in j:  # BAM §4.4: only pairs whose δ passed; the others are counted, not scored
        passed = torch.tensor(j["delta_passed"].fillna(False).to_numpy(bool))
        out.excluded_delta.setdefault(scenario, {}).update(
            {
                m: int((~passed[torch.from_numpy(j["method"].to_numpy() == m)]).sum())
                for m in j["method"].unique()
            }
        )
        correct = correct & passed
    correct = correct & torch.isfinite(a) & torch.isfinite(b)  # NaN: a member's map was non-finite (runner)
    value = per_pair(a, b, **kw).double()
    included = correct & torch.isfinite(value)
    label = label or name
    out.parts.append(
        pd.DataFrame(
            {
                "scenario": scenario,
                "metric": label,
                "method": j["method"].to_numpy(),
                "pair": j["pair"].to_numpy(),
                "value": value.numpy(),
                "included": included.numpy(),
            }
        )
    )
    if cls.per != "pair":
        return
    score = cls.function
    methods = j["method"].to_numpy()
    for m in dict.fromkeys(methods.tolist()):
        sel = torch.from_numpy(methods == m)
        out.scores[(label, m)] = score(a[sel], b[sel], correct[sel], **kw)
