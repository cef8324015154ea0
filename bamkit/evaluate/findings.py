"""The BAM paper's qualitative findings (:data:`bamkit.published.FINDINGS`, Yang & Kim 2019 §5), checked on a run's
leaderboard: each with this run's numbers and whether it reproduces.

Rankings are among BAM's eight saliency methods (:data:`bamkit.published.BAM_SALIENCY`: VG, GxI, SG, IG, IG-SG,
GB, GC, GGC) as far as the suite has them, identified by registered name, whatever their labels; TCAV and the
references are reported beside them. A finding whose methods or metric the run lacks is "not measured" (None),
never counted as reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from bamkit.metrics.registry import direction
from bamkit.published import BAM_SALIENCY, FINDINGS, Finding


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


Outcome = tuple[bool | None, dict[str, Any]]


def _top(f: Finding, b: Board) -> Outcome:
    r = b.ranks(f.metric)
    if not all(m in r for m in f.methods) or len(r) < f.min_methods:
        return None, {"ranks": b.labelled(r)}
    return all(r[m] <= f.k for m in f.methods), {"ranks": b.labelled(r), "of": len(r)}


def _lower_half(f: Finding, b: Board) -> Outcome:
    r = b.ranks(f.metric)
    (m,) = f.methods
    if m not in r or len(r) < f.min_methods:
        return None, {"ranks": b.labelled(r)}
    return r[m] > len(r) / 2, {"ranks": b.labelled(r), "of": len(r)}


def _above(f: Finding, b: Board) -> Outcome:
    v = b.values(f.metric)
    (m,) = f.methods
    return (v[m] > f.bounds[0] if m in v else None), {"rho": b.labelled(v)}


def _count_above(f: Finding, b: Board) -> Outcome:
    v = b.values(f.metric)
    if len(v) < f.min_methods:
        return None, {"rho": b.labelled(v)}
    pos = sum(x > f.bounds[0] for x in v.values())
    return pos >= f.k, {"rho": b.labelled(v), "positive": pos, "of": len(v)}


def _mean_within(f: Finding, b: Board) -> Outcome:
    v = b.values(f.metric)
    if not v:
        return None, {}
    mean = sum(v.values()) / len(v)
    lo, hi = f.bounds
    return lo <= mean <= hi, {"mean_over_methods": mean, "per_method": b.labelled(v)}


TESTS: dict[str, Callable[[Finding, Board], Outcome]] = {
    "top": _top,
    "lower_half": _lower_half,
    "above": _above,
    "count_above": _count_above,
    "mean_within": _mean_within,
}


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
        ok, measured = TESTS[f.test](f, board)
        out.append({"id": f.id, "text": f.text, "measured": measured, "reproduced": ok})
    return out
