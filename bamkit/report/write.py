"""Writing the report: ``index.html`` (self-contained), ``report.md`` with ``figures/``, and the CSV tables."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from bamkit import atomic
from bamkit import published as pub
from bamkit.locks import output_lock
from bamkit.report.document import build_document
from bamkit.report.html import to_html, to_markdown
from bamkit.report.inputs import load_summary
from bamkit.report.sections import method_params


def _csv(rows: list[list[Any]], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if (isinstance(c, float) and not math.isfinite(c)) or c is None else c for c in r])
    return buf.getvalue()


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``results_dir`` into ``out`` (default ``results_dir/report``); return index.html."""
    results = Path(results_dir)
    out = Path(out) if out is not None else results / "report"
    doc = build_document(results)
    s = load_summary(results)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    with output_lock(out, "report folder", folder=True):
        return _write(doc, s, out)


def _write(doc, s: dict[str, Any], out: Path) -> Path:
    """:func:`write_report` under the report folder's lock."""
    for name, png in doc.figures():
        atomic.write_bytes(out / "figures" / f"{name}.png", png)
    atomic.write_text(out / "report.md", to_markdown(doc))
    methods = method_params(s)
    cols = [
        "metric",
        "method",
        "value",
        "ci_low",
        "ci_high",
        "trial_mean",
        "trial_std",
        "n",
        "rank",
        "higher_is_better",
    ]
    rows = []
    for r in s["summary"]:
        name, params = methods.get(r["method"], (r["method"], {}))
        p = pub.lookup(r["metric"], name, params)
        rows.append([r.get(c) for c in cols] + [p.value if p else None, p.source if p else None])
    atomic.write_text(out / "leaderboard.csv", _csv(rows, [*cols, "published", "published_source"]))
    ag = s.get("agreement") or {}
    if ag.get("metrics"):
        atomic.write_text(
            out / "agreement.csv",
            _csv([[m, *row] for m, row in zip(ag["metrics"], ag["tau"])], ["metric", *ag["metrics"]]),
        )
    levels = (s.get("stability") or {}).get("levels") or []
    if levels:
        header = list(levels[0])
        atomic.write_text(out / "stability.csv", _csv([[r.get(h) for h in header] for r in levels], header))
    tests = s.get("paired_tests") or []
    if tests:
        header = list(tests[0])
        atomic.write_text(out / "paired_tests.csv", _csv([[t.get(h) for h in header] for t in tests], header))
    page = out / "index.html"
    atomic.write_text(page, to_html(doc))
    return page
