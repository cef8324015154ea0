"""The report's stability section (Park; Wang & Kong 2022; docs/metrics.md#stability): curves of mean Kendall τ and cosine against the deviation level,
Park's τ–cosine scatter coloured by the level, and the tables behind them.

The curves and tables come from ``summary.json``; the scatter needs every (image, level) point, read from the
results folder's ``per_image`` table (skipped with a note when that file is gone).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bamkit.errors import DataError
from bamkit.metrics.registry import METRICS
from bamkit.report.html import Doc, fmt

# Summary rows that belong to this section rather than to the leaderboard: the stability rows that are read,
# not ranked (the metric registry says which).
SECTION_ONLY = tuple(
    n for n, c in METRICS.items() if c.scenario == "stability" and c.higher_is_better is None
)
READING = (
    "Protocol 1: higher τ and cosine at a fixed ε = a more robust method. Protocol 2 is not a higher-is-"
    "better score: Park reads a monotone decrease with the removed ratio (Spearman ρ(τ, level) strongly "
    "negative) together with a strong τ–cosine correlation as the desired behaviour; ratios ≥ 0.6 look "
    "alike because the important pixels are gone. Stability is not correctness: a seeded random map ignores "
    "the input and, run with the same seeds on x and x̂, scores τ = cosine = 1."
)


def load_points(results: Path) -> Any:
    """The stability rows of ``results/per_image`` (parquet or CSV) as a DataFrame, or None."""
    import pandas as pd

    for name, reader in (("per_image.parquet", pd.read_parquet), ("per_image.csv", pd.read_csv)):
        p = results / name
        if p.is_file():
            try:
                df = reader(p)
            except ImportError:  # parquet without pyarrow: the CSV beside it
                continue
            except (ValueError, OSError, UnicodeDecodeError) as e:
                raise DataError(
                    f"{str(p)!r} cannot be read ({type(e).__name__}: {e}); re-run 'bamkit evaluate' into "
                    f"{str(results)!r} to rewrite it"
                ) from None
            missing = [c for c in ("scenario", "method", "image") if c not in df]
            if missing:
                raise DataError(
                    f"{str(p)!r} is not a bamkit per-image table (no column {', '.join(missing)}); re-run "
                    f"'bamkit evaluate' into {str(results)!r}"
                )
            if "protocol" not in df:
                return None
            return df[df["scenario"] == "stability"]
    return None


def _summary_value(summary: list[dict], metric: str, method: str) -> float | None:
    r = next((r for r in summary if r["metric"] == metric and r["method"] == method), None)
    return None if r is None else r.get("value")


def add_section(doc: Doc, s: dict[str, Any], results: Path, order: list[str]) -> None:
    """Append the stability section to ``doc`` when the suite ran the stability scenario."""
    from bamkit.report import plots

    st = s.get("stability") or {}
    levels = st.get("levels") or []
    if not levels:
        return
    protocols = st.get("protocols") or sorted({d["protocol"] for d in levels})
    methods = [m for m in order if any(d["method"] == m for d in levels)]
    doc.h(2, "Kendall τ and cosine under input deviations")
    doc.p(
        f"Model {st.get('model')} on {st.get('set')}; Kendall τ-{st.get('variant')} and cosine between the raw "
        f"flattened attributions a(x) and a(x̂)"
        + (f" (τ on a seeded subset of {st.get('max_n')} elements)" if st.get("max_n") else "")
        + f"; masked pixels filled with the {st.get('fill')} colour; each method runs with the same per-image "
        "seeds on x and x̂. " + READING
    )
    doc.fig(
        "stability_curves",
        plots.stability_curves(levels, methods, protocols),
        "Mean Kendall τ (top) and cosine (bottom) against the deviation level, per method and protocol.",
    )
    summary = s.get("summary", [])
    header = ["method"]
    for p in protocols:
        header += [f"{p}: mean τ", f"{p}: mean cos", f"{p}: r(τ, cos)", f"{p}: ρ(τ, level)"]
    body = []
    for m in methods:
        row: list[Any] = [m]
        for p in protocols:
            row += [
                _summary_value(summary, f"kendall_{p}", m),
                _summary_value(summary, f"cosine_{p}", m),
                _summary_value(summary, f"tau_cosine_r_{p}", m),
                _summary_value(summary, f"tau_level_rho_{p}", m),
            ]
        body.append(row)
    doc.table(
        "Per method: τ and cosine averaged over the levels (per-image means), Pearson r between τ and cosine "
        "over every (image, level) point, Spearman ρ between τ and the level",
        header,
        body,
    )
    for p in protocols:
        lv = sorted({float(d["level"]) for d in levels if d["protocol"] == p})
        rows = []
        for m in methods:
            by = {float(d["level"]): d for d in levels if d["method"] == m and d["protocol"] == p}
            rows.append([m, *[_cell(by.get(x)) for x in lv]])
        doc.table(
            f"{plots.PROTOCOL_TITLES.get(p, p)}: mean τ / mean cosine per level",
            ["method", *[f"{x:g}" for x in lv]],
            rows,
        )
    pts = load_points(results)
    if pts is None or pts.empty:
        doc.p("The τ–cosine scatter needs the results folder's per_image table, which was not found.")
        return
    for p in protocols:
        d = pts[pts["protocol"] == p]
        points = {}
        for m in methods:
            q = d[d["method"] == m]
            ok = np.isfinite(q["tau"].to_numpy(float)) & np.isfinite(q["cosine"].to_numpy(float))
            if ok.any():
                points[m] = tuple(q[k].to_numpy(float)[ok] for k in ("cosine", "tau", "level"))
        if not points:
            continue
        r = {m: _summary_value(summary, f"tau_cosine_r_{p}", m) for m in points}
        doc.fig(
            f"stability_scatter_{p}",
            plots.stability_scatter(points, p, {k: v for k, v in r.items() if v is not None}),
            f"Kendall τ against cosine for every image and level, coloured by the level (Park's figure; "
            f"{plots.PROTOCOL_TITLES.get(p, p)}).",
        )


def _cell(d: dict | None) -> str:
    if not d:
        return "–"
    t, c = d.get("tau_mean"), d.get("cosine_mean")
    if (t is None or not math.isfinite(t)) and (c is None or not math.isfinite(c)):
        return "–"
    return f"{fmt(t, 2)} / {fmt(c, 2)}"
