"""The BAM paper's qualitative findings (Yang & Kim 2019, §5, Figs. 4, 6, 8, 10, 11, 13), checked on a run's
leaderboard: each with this run's numbers and whether it reproduces.

Rankings are among BAM's eight saliency methods (:data:`bamkit.published.BAM_SALIENCY`: VG, GxI, SG, IG, IG-SG,
GB, GC, GGC) as far as the suite has them, identified by registered name, whatever their labels; TCAV and the
references are reported beside them. A finding whose methods or metric the run lacks is "not measured" (None),
never counted as reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bamkit.metrics.registry import direction
from bamkit.published import BAM_SALIENCY

GC, VG, GB = "gradcam", "vanilla_gradient", "guided_backprop"


@dataclass(frozen=True)
class Finding:
    """One finding: an id, the paper's claim, and its check on the leaderboard."""

    id: int
    text: str
    check: Callable[[Board], tuple[bool | None, dict[str, Any]]]


class Board:
    """The leaderboard seen through BAM's saliency methods: value and rank (1 = best, ties share) per metric."""

    def __init__(self, summary: pd.DataFrame, names: dict[str, str]) -> None:
        self.summary, self.names = summary, names  # names: registered name -> label in this run

    def values(self, metric: str) -> dict[str, float]:
        """Registered name -> value of ``metric`` for the saliency methods the run has."""
        d = self.summary[self.summary["metric"] == metric]
        by = dict(zip(d["method"], d["value"].astype(float)))
        return {n: by[lab] for n, lab in self.names.items() if lab in by and math.isfinite(by[lab])}

    def ranks(self, metric: str) -> dict[str, int]:
        """Registered name -> rank on ``metric``, in the metric's own direction (the registry's)."""
        v = pd.Series(self.values(metric))
        higher = direction(metric)
        return {} if v.empty else v.rank(ascending=not higher, method="min").astype(int).to_dict()

    def labelled(self, d: dict[str, Any]) -> dict[str, Any]:
        return {self.names[k]: v for k, v in d.items()}


def _top(metric: str, methods: tuple[str, ...], k: int):
    def check(b: Board):
        r = b.ranks(metric)
        if not all(m in r for m in methods) or len(r) < 4:
            return None, {"ranks": b.labelled(r)}
        return all(r[m] <= k for m in methods), {"ranks": b.labelled(r), "of": len(r)}

    return check


def _gb_lower_half(b: Board):
    r = b.ranks("mcs")
    if GB not in r or len(r) < 4:
        return None, {"ranks": b.labelled(r)}
    return r[GB] > len(r) / 2, {"ranks": b.labelled(r), "of": len(r)}


def _rho_gc(b: Board):
    v = b.values("rmcs_rho")
    return (v[GC] > 0.5 if GC in v else None), {"rho": b.labelled(v)}


def _rho_positive(b: Board):
    v = b.values("rmcs_rho")
    if len(v) < 6:
        return None, {"rho": b.labelled(v)}
    pos = sum(x > 0 for x in v.values())
    return pos >= 6, {"rho": b.labelled(v), "positive": pos, "of": len(v)}


def _idr_random(b: Board):
    v = b.values("idr_random")
    if not v:
        return None, {}
    mean = sum(v.values()) / len(v)
    return 0.4 <= mean <= 0.6, {"mean_over_methods": mean, "per_method": b.labelled(v)}


FINDINGS: tuple[Finding, ...] = (
    Finding(1, "MCS: GradCAM is among the top two saliency methods (BAM Fig. 4)", _top("mcs", (GC,), 2)),
    Finding(2, "MCS: Guided Backprop is in the lower half (BAM Fig. 4)", _gb_lower_half),
    Finding(3, "Relative MCS: Pearson ρ with the accuracy drop > 0.5 for GradCAM (BAM Fig. 6/13)", _rho_gc),
    Finding(4, "Relative MCS: ρ > 0 for at least 6 of the 8 saliency methods (BAM Fig. 13)", _rho_positive),
    Finding(
        5, "IDR: GradCAM and Vanilla Gradient are in the top three (BAM Fig. 8)", _top("idr", (GC, VG), 3)
    ),
    Finding(6, "IDR: the random-region baseline is within 0.4-0.6 (BAM Fig. 8)", _idr_random),
    Finding(7, "IIR: GradCAM and Vanilla Gradient are the top two (BAM Fig. 10)", _top("iir", (GC, VG), 2)),
    Finding(
        8,
        "App. C: GradCAM and Vanilla Gradient have the two lowest relative attribution changes (BAM Fig. 11)",
        _top("attribution_change", (GC, VG), 2),
    ),
)


def check_findings(summary: pd.DataFrame, methods: dict[str, str]) -> list[dict[str, Any]]:
    """Each finding with this run's numbers: ``{id, text, measured, reproduced}`` (None: not measured).

    Args:
        summary: the leaderboard (summary.csv's rows).
        methods: label -> registered name of the suite's methods.
    """
    names = {}
    for label, name in methods.items():
        if name in BAM_SALIENCY and name not in names:
            names[name] = label
    board = Board(summary, names)
    out = []
    for f in FINDINGS:
        ok, measured = f.check(board)
        out.append({"id": f.id, "text": f.text, "measured": measured, "reproduced": ok})
    return out
