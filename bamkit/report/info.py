"""What the report knows of a metric, read from ``summary.json`` (``metric_info``, written by the evaluate
stage with each metric's title at this run's settings); results folders written before that section existed
fall back to the metric registry."""

from __future__ import annotations

from typing import Any

from bamkit.metrics.registry import METRICS
from bamkit.report.html import fmt


def metric_info(s: dict[str, Any], metric: str) -> dict[str, Any]:
    """``{title, higher_is_better, scenario, derived_from, baseline, chance}`` of ``metric``; a row the run
    names but nothing describes (a derived label) gets its name as title and no direction."""
    info = (s.get("metric_info") or {}).get(metric)
    if info is not None:
        return info
    if metric in METRICS:
        cls = METRICS.get(metric)
        return {"title": cls.title_for(), "higher_is_better": cls.higher_is_better, "scenario": cls.scenario,
                "derived_from": cls.derived_from, "baseline": cls.baseline, "chance": cls.chance}  # fmt: skip
    return {"title": metric, "higher_is_better": None, "scenario": None, "derived_from": None}


def title(s: dict[str, Any], metric: str) -> str:
    """The metric's title with its direction."""
    info = metric_info(s, metric)
    way = {True: " — higher is better", False: " — lower is better"}.get(info.get("higher_is_better"), "")
    return f"{info.get('title') or metric}{way}"


def is_baseline(s: dict[str, Any], metric: str) -> bool:
    """A derived row that is read beside its metric, not ranked (the random-region baselines)."""
    info = metric_info(s, metric)
    return info.get("derived_from") is not None and info.get("higher_is_better") is None


def rows_of(summary: list[dict], metric: str) -> list[dict]:
    return [r for r in summary if r["metric"] == metric]


def chance_note(s: dict[str, Any], metric: str) -> str:
    """What chance scores on IIR and App. C (summary.json ``iir_chance``): they count how much a map moves, not
    where it points, so an input-independent map is perfect there."""
    c = s.get("iir_chance") or {}
    if metric not in ("iir", "attribution_change") or not c:
        return ""
    const, rnd = c["constant"][metric], c["independent_random"][metric]
    return (
        f"Reading it: this metric counts only how much a map moves between x and x + δ, so a map that ignores its "
        f"input scores {fmt(const)} (the best value); a random map drawn afresh for x and for x + δ scores about "
        f"{fmt(rnd)} on these {c['pairs']} pairs (their regions' sizes). "
    )
