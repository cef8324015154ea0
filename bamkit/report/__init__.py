"""The report of a results folder (``bamkit report``): HTML + Markdown + CSV with plots and saliency grids.

``write_report(results_dir, out)`` writes ``out/index.html`` (self-contained: opens from disk, no network),
``out/report.md`` with ``out/figures/*.png``, and ``out/leaderboard.csv`` / ``agreement.csv`` /
``paired_tests.csv`` / ``stability.csv``. Everything comes from the files ``bamkit evaluate`` wrote (``summary.json``,
``examples/``, ``verify.json``), so a report can be rebuilt without models or data.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from bamkit import atomic
from bamkit.errors import DataError
from bamkit.report import published as pub
from bamkit.report.html import Doc, fmt, to_html, to_markdown

__all__ = ["write_report", "build_document"]

METRIC_TITLES = {
    "mcs": "Model contrast score (MCS, BAM §4.2) — higher is better",
    "idr": "Input dependence rate (IDR, BAM §4.3) — higher is better",
    "iir": "Input independence rate (IIR, BAM §4.4, t = 10 %) — higher is better",
    "attribution_change": "Average relative attribution change (BAM App. C) — lower is better",
    "rcap": "RCAP (GAG §4.2) — higher is better",
    "dauc": "Deletion AUC (GAG protocol) — lower is better",
    "iauc": "Insertion AUC (GAG protocol) — higher is better",
}
FAITHFULNESS = (
    "rcap",
    "dauc",
    "iauc",
    "dice",
    "logcosh_dice",
    "mae",
    "sqrt_mae",
    "rmse",
    "pointing_game",
    "aupc",
    "autvc",
    "mutual_information",
)


def _load(results: Path) -> dict[str, Any]:
    p = results / "summary.json"
    if not p.is_file():
        raise DataError(
            f"{str(results)!r} has no summary.json; run 'bamkit evaluate' into it first (or, after "
            "'--shard i/n' runs, finish every shard)"
        )
    return json.loads(p.read_text(encoding="utf-8"))


def _method_params(s: dict[str, Any]) -> dict[str, tuple[str, dict]]:
    out = {}
    for m in s["suite"].get("methods", []):
        params = {k: v for k, v in m.items() if k not in ("name", "label")}
        out[m["label"]] = (m["name"], params)
    return out


def _rows(summary: list[dict], metric: str) -> list[dict]:
    return [r for r in summary if r["metric"] == metric]


def _leaderboard(doc: Doc, s: dict, metric: str, methods: dict[str, tuple[str, dict]]) -> None:
    rows = sorted(
        _rows(s["summary"], metric), key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["method"])
    )
    if not rows:
        return
    body = []
    for r in rows:
        name, params = methods.get(r["method"], (r["method"], {}))
        p = pub.lookup(metric, name, params)
        body.append(
            [
                r["method"],
                r.get("value"),
                r.get("ci_low"),
                r.get("ci_high"),
                r.get("trial_mean"),
                r.get("trial_std"),
                r.get("n"),
                r.get("rank"),
                p.value if p else None,
            ]
        )
    srcs = {pub.lookup(metric, *methods.get(r["method"], (r["method"], {}))) for r in rows} - {None}
    note = f"published: {'; '.join(sorted({x.source for x in srcs}))}" if srcs else "no published value"
    doc.table(
        f"{metric} — {note}",
        [
            "method",
            "value",
            "95% CI low",
            "95% CI high",
            "trials mean",
            "trials std",
            "n",
            "rank",
            "published",
        ],
        body,
    )


def build_document(results: str | Path) -> Doc:
    """The report of ``results`` as a :class:`~bamkit.report.html.Doc` (rendered by the writers)."""
    from bamkit.report import grids, plots
    from bamkit.report import stability as stab

    results = Path(results)
    s = _load(results)
    suite = s["suite"]
    methods = _method_params(s)
    order = s.get("methods", list(methods))
    summary = s["summary"]
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    doc = Doc(f"bamkit report — suite '{suite.get('name', '?')}'")
    prov = s.get("provenance", {})
    doc.p(
        f"Methods: {', '.join(order)}. Metrics: {', '.join(suite.get('metrics', []))}. Data: "
        f"{prov.get('data', '?')} (sha256 {str(prov.get('data_hash', ''))[:16]}…). Seed {suite.get('seed')}. "
        f"Values are full-pool means over correctly classified pairs with 95 % bootstrap CIs; 'trials' are "
        f"{suite.get('samples', {}).get('n_trials')} random subsets of "
        f"{suite.get('samples', {}).get('trial_size')} pairs (BAM's protocol)."
    )
    if s.get("skipped"):
        doc.p("Skipped scenarios: " + "; ".join(f"{k}: {v}" for k, v in s["skipped"].items()))

    doc.h(1, "Leaderboard")
    for metric in metrics:
        if metric.endswith("_random") or metric in stab.SECTION_ONLY:  # baselines; stability's own section
            continue
        _leaderboard(doc, s, metric, methods)

    doc.h(1, "BAM metrics")
    if _rows(summary, "mcs"):
        png = plots.metric_bars(
            summary,
            "mcs",
            METRIC_TITLES["mcs"],
            "MCS",
            order,
            baseline_rows=_rows(summary, "mcs_random"),
            baseline_label="random region",
        )
        doc.fig(
            "mcs",
            png,
            "MCS per method with the random-region baseline (BAM Fig. 4). " + pub.BAM_FINDINGS["mcs"],
        )
    if _rows(summary, "idr"):
        png = plots.metric_bars(
            summary,
            "idr",
            METRIC_TITLES["idr"],
            "IDR",
            order,
            baseline_rows=_rows(summary, "idr_random") or None,
            baseline_line=0.5,
            baseline_label="50 % / random region",
        )
        doc.fig(
            "idr",
            png,
            "IDR per method; the dashed line is the 50 % random baseline (BAM Fig. 8). "
            + pub.BAM_FINDINGS["idr"],
        )
    for metric in ("iir", "attribution_change"):
        if _rows(summary, metric):
            png = plots.metric_bars(summary, metric, METRIC_TITLES[metric], metric, order)
            doc.fig(metric, png, METRIC_TITLES[metric] + ". " + pub.BAM_FINDINGS[metric])
    rm = s.get("rmcs") or {}
    if rm.get("series"):
        rho = {r["method"]: r["value"] for r in _rows(summary, "rmcs_rho")}
        doc.fig(
            "rmcs",
            plots.rmcs_figure(rm["series"], rm.get("acc_drop", {}), rho),
            f"Relative MCS over k against the accuracy drop ({rm.get('acc_drop_source', '')}).",
        )
        body = []
        for m in order:
            r10 = next((r for r in _rows(summary, "rmcs_rho") if r["method"] == m), None)
            r9 = next((r for r in _rows(summary, "rmcs_rho9") if r["method"] == m), None)
            name, params = methods.get(m, (m, {}))
            p = pub.lookup("rmcs_rho", name, params)
            if r10 or r9:
                body.append(
                    [
                        m,
                        r10 and r10.get("value"),
                        r10 and r10.get("p_value"),
                        r9 and r9.get("value"),
                        p.value if p else None,
                    ]
                )
        doc.table(
            "Pearson ρ between relative MCS and the accuracy drop (10 points incl. k = 1.0, 9 points "
            "without; BAM Fig. 13)",
            ["method", "ρ (10)", "p", "ρ (9)", "published ρ"],
            body,
        )

    faith = [m for m in FAITHFULNESS if _rows(summary, m)]
    if faith:
        doc.h(1, "Faithfulness and localisation (seed papers)")
        body = []
        for m in order:
            row: list[Any] = [m]
            for metric in faith:
                r = next((r for r in _rows(summary, metric) if r["method"] == m), None)
                row.append(r and r.get("value"))
            body.append(row)
        doc.table(
            "Per-method means over correctly classified images (RCAP/DAUC/IAUC: GAG protocol, "
            "abs_minmax maps)",
            ["method", *faith],
            body,
        )
        pubrows = []
        for m in order:
            name, params = methods.get(m, (m, {}))
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
            if _rows(summary, metric):
                doc.fig(
                    metric,
                    plots.metric_bars(summary, metric, METRIC_TITLES[metric], metric, order),
                    METRIC_TITLES[metric],
                )

    stab.add_section(doc, s, results, order)

    ag = s.get("agreement") or {}
    if len(ag.get("metrics", [])) >= 2:
        doc.h(1, "Do the metrics agree?")
        doc.fig(
            "agreement",
            plots.agreement_heatmap(ag["metrics"], ag["tau"]),
            "Kendall τ between the method rankings of each pair of metrics (directions honoured).",
        )
    tests = [t for t in s.get("paired_tests", []) if t.get("better")]
    if s.get("paired_tests"):
        doc.h(2, "Significant paired differences")
        doc.table(
            "Paired tests on the same pairs (Wilcoxon signed-rank; sign test for 0/1 outcomes), Holm-"
            "corrected per metric; only significant ones listed",
            ["metric", "a", "b", "n", "mean diff", "p (Holm)", "better"],
            [[t["metric"], t["a"], t["b"], t["n"], t["mean_diff"], t["p_holm"], t["better"]] for t in tests],
        )

    ex = grids.load_examples(results)
    if ex:
        doc.h(1, "Saliency maps")
        for scenario in ("mcs", "rmcs", "idr", "iir", "faithfulness"):
            if scenario in ex:
                doc.fig(
                    f"grid_{scenario}",
                    grids.saliency_grid(scenario, ex[scenario], order),
                    grids.TITLES[scenario],
                )

    _verification(doc, s.get("verification"))
    _provenance(doc, s)
    return doc


def _verification(doc: Doc, v: dict[str, Any] | None) -> None:
    from bamkit.report import plots

    doc.h(1, "Verification of the ground-truth models (BAM Fig. 2)")
    if not v:
        doc.p("No verification result was found (run 'bamkit verify'); RMCS used the paper's accuracy drop.")
        return
    top = v.get("top") or {}
    labels = [
        ("acc_full", "accuracy, full input"),
        ("acc_cf_removed", "accuracy, common feature removed"),
        ("conf_rise", "% correct with higher confidence without CF"),
        ("acc_only_cf", "accuracy, only CF"),
    ]
    body = []
    for role, r in top.items():
        for key, text in labels:
            if key in r:
                val = r[key]
                body.append(
                    [
                        f"{role}: {text}",
                        None if val is None else 100 * float(val),
                        pub.BAM_FIG2_TOP.get(role, {}).get(key),
                    ]
                )
    if body:
        doc.table(
            "Relative feature importance (%), measured vs published", ["check", "measured", "published"], body
        )
    ks = v.get("k_series") or []
    if ks:
        body = [
            [
                f"k = {float(r['k']):.1f}",
                r.get("n"),
                _pct(r.get("acc_with")),
                _pct(r.get("acc_without")),
                _pct(r.get("drop")),
                None
                if round(float(r["k"]), 1) not in pub.BAM_K_ACCURACY
                else pub.BAM_K_ACCURACY[round(float(r["k"]), 1)][0]
                - pub.BAM_K_ACCURACY[round(float(r["k"]), 1)][1],
            ]
            for r in ks
        ]
        doc.table(
            "Bamboo-forest accuracy of f_k (%): with / without the dog and the drop (BAM Fig. 2 bottom)",
            ["k", "n", "with dog", "without", "drop", "published drop"],
            body,
        )
        doc.fig("verify_k", plots.k_accuracy_figure(ks, pub.BAM_K_ACCURACY), "Verification of the k-models.")
    checks = v.get("checks") or []
    if checks:
        header = list(dict.fromkeys(k for c in checks for k in c))
        doc.table(
            f"Expected orderings ({'all passed' if v.get('passed') else 'some FAILED'})",
            header,
            [[c.get(h) for h in header] for c in checks],
        )


def _pct(x: Any) -> float | None:
    return None if x is None else 100 * float(x)


def _provenance(doc: Doc, s: dict[str, Any]) -> None:
    import yaml

    prov = s.get("provenance", {})
    doc.h(1, "Provenance")
    doc.table(
        "Inputs",
        ["item", "value"],
        [
            ["dataset file", prov.get("data")],
            ["dataset sha256", prov.get("data_hash")],
            ["dataset attributes", json.dumps(prov.get("data_attrs", {}))],
            ["δ patch file", prov.get("patch_data")],
            ["δ patch sha256", prov.get("patch_data_hash")],
            ["models folder", prov.get("models_dir")],
            ["suite hash", prov.get("suite_hash")],
            ["seed", prov.get("seed")],
            ["shards merged", prov.get("shards")],
            ["evaluation seconds", s.get("seconds")],
        ],
    )
    models = prov.get("models", {})
    if models:
        doc.table(
            "Models",
            ["role", "file", "arch", "train set", "checkpoint sha256", "data hash"],
            [
                [
                    r,
                    m.get("file"),
                    m.get("arch"),
                    m.get("train_set"),
                    str(m.get("checkpoint_hash", ""))[:16],
                    str(m.get("data_hash", ""))[:16],
                ]
                for r, m in models.items()
            ],
        )
    counts = s.get("counts", {})
    if counts.get("degenerate_maps"):
        doc.table(
            "Degenerate maps (constant or non-finite before scaling; SPEC §1.3)",
            ["method", "count"],
            [[k, v] for k, v in counts["degenerate_maps"].items()],
        )
    doc.table("Versions", ["package", "version"], [[k, v] for k, v in prov.get("versions", {}).items()])
    doc.pre(yaml.safe_dump(s["suite"], sort_keys=False, allow_unicode=True))


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
    s = _load(results)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, png in doc.figures():
        atomic.write_bytes(out / "figures" / f"{name}.png", png)
    atomic.write_text(out / "report.md", to_markdown(doc))
    methods = _method_params(s)
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


_ = fmt  # re-exported for callers formatting their own tables
