"""The report's first section when a run scored methods of a researcher's own (``bamkit score``): where each
new method stands on every ranked metric, with its interval, and which of the run's methods it is significantly
better or worse than on the same pairs (the paired tests of ``summary.json``)."""

from __future__ import annotations

from typing import Any

from bamkit.report.html import Doc, fmt
from bamkit.report.info import metric_info, rows_of, title


def placement_section(doc: Doc, s: dict[str, Any]) -> None:
    """One table per scored method: metric, value [95 % CI], rank of the ranked methods, paired tests."""
    scored = (s.get("scored") or {}).get("methods") or []
    if not scored:
        return
    summary, tests = s["summary"], s.get("paired_tests") or []
    doc.h(1, "Your methods")
    doc.p(
        f"{', '.join(scored)} scored beside the run's methods on the same images and models. Value: over every "
        "included pair, with a 95 % bootstrap interval; rank among the ranked methods (the random map is a "
        "reference, never ranked); better / worse: a significant paired difference on the same pairs (Wilcoxon, "
        "or the sign test for 0/1 outcomes; Holm-corrected per metric); the rest are not significantly different."
    )
    for method in scored:
        body = []
        for metric in dict.fromkeys(r["metric"] for r in summary):
            if metric_info(s, metric).get("higher_is_better") is None:
                continue
            rows = rows_of(summary, metric)
            mine = next((r for r in rows if r["method"] == method), None)
            if mine is None:
                continue
            ranked = [r for r in rows if r.get("rank") is not None]
            rank = mine.get("rank")
            better, worse = [], []
            for t in tests:
                if t["metric"] == metric and method in (t["a"], t["b"]) and t.get("better"):
                    other = t["b"] if t["a"] == method else t["a"]
                    (better if t["better"] == method else worse).append(other)
            body.append([
                title(s, metric),
                mine.get("value"),
                f"[{fmt(mine.get('ci_low'))}, {fmt(mine.get('ci_high'))}]",
                f"{int(rank)} of {len(ranked)}" if rank is not None else "not ranked",
                ", ".join(better) or "–",
                ", ".join(worse) or "–",
            ])  # fmt: skip
        doc.table(
            f"{method}: placement", ["metric", "value", "95% CI", "rank", "better than", "worse than"], body
        )
