"""The report's renderings of a scenario's results, by name (a scenario lists the ones it wants in
``report_parts``; the evaluate stage writes that list into ``summary.json["scenarios"]``):

* ``bars``: a bar chart per ranked metric of the scenario, with its random-region baseline and its chance level
  (BAM Figs. 4, 8, 10, 11), captioned with the metric's title and the paper's findings about it;
* ``rmcs``: relative MCS over k against the accuracy drop, and the table of Pearson ρ (BAM Figs. 6, 13);
* ``faithfulness``: the seed papers' per-image metrics in one table, the published values beside them, bars;
* ``stability``: τ and cosine curves, tables and Park's scatter (:mod:`bamkit.report.stability`).

Everything is read from ``summary.json`` (``metric_info`` holds each metric's title, direction, baseline and
chance), so a report renders a results folder without the code that produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bamkit import published as pub
from bamkit.report import plots
from bamkit.report import stability as stab
from bamkit.report.html import Doc
from bamkit.report.info import chance_note, metric_info, rows_of, title


@dataclass
class ReportContext:
    """What every part reads: the summary, the results folder, the method order and method parameters."""

    s: dict[str, Any]
    results: Path
    order: list[str]
    methods: dict[str, tuple[str, dict]]


def findings_caption(metric: str) -> str:
    """The paper's findings about ``metric`` (or its baseline), quoted from :data:`bamkit.published.FINDINGS`."""
    return " ".join(f"Finding {f.id}: {f.text}." for f in pub.findings_about(metric))


def bars(doc: Doc, ctx: ReportContext, scenario: dict[str, Any]) -> None:
    summary = ctx.s["summary"]
    for metric in scenario.get("metrics", []):
        info = metric_info(ctx.s, metric)
        if info.get("higher_is_better") is None or not rows_of(summary, metric):
            continue
        base = info.get("baseline")
        chance = info.get("chance")
        png = plots.metric_bars(summary, metric, title(ctx.s, metric), metric, ctx.order,
                                baseline_rows=rows_of(summary, base) or None if base else None,
                                baseline_line=chance)  # fmt: skip
        caption = title(ctx.s, metric) + (" with the random-region baseline" if base else "")
        caption += f"; the dashed line is chance ({chance:g})" if chance is not None else ""
        doc.fig(metric, png, f"{caption}. {chance_note(ctx.s, metric)}{findings_caption(metric)}".strip())


def rmcs(doc: Doc, ctx: ReportContext, scenario: dict[str, Any]) -> None:
    s, summary = ctx.s, ctx.s["summary"]
    rm = s.get("rmcs") or {}
    if not rm.get("series"):
        return
    rho = {r["method"]: r["value"] for r in rows_of(summary, "rmcs_rho")}
    images = ((s.get("suite") or {}).get("scenarios") or {}).get("rmcs", {}).get("set", "?")
    doc.fig(
        "rmcs",
        plots.rmcs_figure(rm["series"], rm.get("acc_drop", {}), rho, set(s.get("concept") or {})),
        f"Relative MCS over k on {images} against the accuracy drop ({rm.get('acc_drop_source', '')}); "
        f"concept methods (TCAV) dotted, as in BAM Fig. 6. {findings_caption('rmcs_rho')}",
    )
    body = []
    for m in ctx.order:
        r10 = next((r for r in rows_of(summary, "rmcs_rho") if r["method"] == m), None)
        r9 = next((r for r in rows_of(summary, "rmcs_rho9") if r["method"] == m), None)
        name, params = ctx.methods.get(m, (m, {}))
        p = pub.lookup("rmcs_rho", name, params)
        if r10 or r9:
            body.append([m, r10 and r10.get("value"), r10 and r10.get("ci_low"), r10 and r10.get("ci_high"),
                         r10 and r10.get("p_value"), r9 and r9.get("value"), p.value if p else None])  # fmt: skip
    doc.table(
        "Pearson ρ between relative MCS and the accuracy drop (10 points incl. k = 1.0, with its 95 % bootstrap "
        "interval over images; 9 points without k = 1.0; BAM Fig. 13)",
        ["method", "ρ (10)", "95% CI low", "95% CI high", "p", "ρ (9)", "published ρ"],
        body,
    )


def faithfulness(doc: Doc, ctx: ReportContext, scenario: dict[str, Any]) -> None:
    summary = ctx.s["summary"]
    faith = [m for m in scenario.get("metrics", []) if rows_of(summary, m)]
    if not faith:
        return
    body = []
    for m in ctx.order:
        row: list[Any] = [m]
        for metric in faith:
            r = next((r for r in rows_of(summary, metric) if r["method"] == m), None)
            row.append(r and r.get("value"))
        body.append(row)
    doc.table(
        "Per-method means over correctly classified images (RCAP/DAUC/IAUC: GAG protocol, abs_minmax maps)",
        ["method", *faith],
        body,
    )
    pubrows = []
    for m in ctx.order:
        name, params = ctx.methods.get(m, (m, {}))
        vals = [pub.lookup(metric, name, params) for metric in faith]
        if any(vals):
            pubrows.append([m, *[v.value if v else None for v in vals]])
    if pubrows:
        doc.table(
            f"Published values for comparison ({pub.GAG_T2}; other data and models)",
            ["method", *faith],
            pubrows,
        )
    for metric in ("rcap", "dauc", "iauc"):
        if metric in faith:
            doc.fig(metric, plots.metric_bars(summary, metric, title(ctx.s, metric), metric, ctx.order),
                    title(ctx.s, metric))  # fmt: skip


def stability(doc: Doc, ctx: ReportContext, scenario: dict[str, Any]) -> None:
    stab.add_section(doc, ctx.s, ctx.results, ctx.order)


PARTS: dict[str, Callable[[Doc, ReportContext, dict[str, Any]], None]] = {
    "bars": bars,
    "rmcs": rmcs,
    "faithfulness": faithfulness,
    "stability": stability,
}


def scenario_sections(doc: Doc, ctx: ReportContext) -> None:
    """Every scenario of the run in order, under its group's heading, with the parts it names."""
    group = None
    for sc in ctx.s.get("scenarios") or []:
        parts = [PARTS[p] for p in sc.get("parts", []) if p in PARTS]
        if not parts:
            continue
        if sc.get("group") != group:
            group = sc.get("group")
            doc.h(1, group or sc["name"])
        for part in parts:
            part(doc, ctx, sc)
