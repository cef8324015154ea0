"""The report's general sections, each a function ``(doc, summary, ...)`` that adds headings, tables and figures:
the paper's findings, a leaderboard per metric, the metrics' agreement, verification and provenance. Each
scenario's own figures are :mod:`bamkit.report.parts`'.

Titles and directions of the metrics come from ``summary.json`` (:mod:`bamkit.report.info`); published numbers
are :mod:`bamkit.published`'s; the k-series figure is verification's own (:func:`bamkit.verify.render.k_series_png`).
"""

from __future__ import annotations

import json
from typing import Any

from bamkit import published as pub
from bamkit.report import plots
from bamkit.report.html import Doc, fmt
from bamkit.report.info import chance_note, rows_of, title
from bamkit.verify.render import k_series_png


def method_params(s: dict[str, Any]) -> dict[str, tuple[str, dict]]:
    out = {}
    for m in s["suite"].get("methods", []):
        params = {k: v for k, v in m.items() if k not in ("name", "label")}
        out[m["label"]] = (m["name"], params)
    return out


def leaderboard(doc: Doc, s: dict, metric: str, methods: dict[str, tuple[str, dict]]) -> None:
    rows = sorted(
        rows_of(s["summary"], metric), key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["method"])
    )
    if not rows:
        return
    body = []
    delta = any(r.get("n_delta_failed") is not None for r in rows)
    for r in rows:
        name, params = methods.get(r["method"], (r["method"], {}))
        p = pub.lookup(metric, name, params)
        rank = "reference" if r.get("reference") else r.get("rank")  # input-independent: shown, never ranked
        if r.get("n_nonfinite"):  # NaN/Inf maps: those images are left out and the method is not ranked
            rank = f"not ranked: {int(r['n_nonfinite'])} non-finite maps excluded"
        elif isinstance(rank, float) and rank == rank:
            rank = int(rank)
        body.append(
            [
                r["method"],
                r.get("value"),
                r.get("ci_low"),
                r.get("ci_high"),
                r.get("trial_mean"),
                r.get("trial_std"),
                r.get("n"),
                *([r.get("n_delta_failed")] if delta else []),
                rank,
                p.value if p else None,
            ]
        )
    srcs = {pub.lookup(metric, *methods.get(r["method"], (r["method"], {}))) for r in rows} - {None}
    note = f"published: {'; '.join(sorted({x.source for x in srcs}))}" if srcs else "no published value"
    doc.table(
        f"{title(s, metric)} ({metric}) — {note}. {chance_note(s, metric)}".strip(),
        [
            "method",
            "value",
            "95% CI low",
            "95% CI high",
            "trials mean",
            "trials std",
            "n",
            *(["excluded: δ failed"] if delta else []),
            "rank",
            "published",
        ],
        body,
    )


def findings_section(doc: Doc, s: dict[str, Any], banners: bool = True) -> None:
    """The paper's qualitative findings with this run's numbers (summary.json ``findings``); with ``banners``, a
    banner at the top of the page for each one that does not reproduce."""
    fs = s.get("findings") or []
    if not fs:
        return
    doc.h(1, "The paper's findings")
    status = {True: "reproduced", False: "NOT reproduced", None: "not measured"}
    body = [
        [f["id"], f["text"], _measured_text(f.get("measured") or {}), status[f.get("reproduced")]] for f in fs
    ]
    n_ok = sum(f.get("reproduced") is True for f in fs)
    doc.table(f"{n_ok} of {len(fs)} reproduce (BAM §5; rankings among its 8 saliency methods)",
              ["#", "finding", "this run", "status"], body)  # fmt: skip
    for f in fs if banners else ():
        if f.get("reproduced") is False:
            doc.banner(f"Finding {f['id']} does not reproduce: {f['text']}")


def _measured_text(m: dict[str, Any]) -> str:
    parts = []
    for key, v in m.items():
        if isinstance(v, dict):
            parts.append(f"{key}: " + ", ".join(f"{k} {fmt(x, 2)}" for k, x in v.items()))
        else:
            parts.append(f"{key}: {fmt(v, 3)}")
    return "; ".join(parts)


def agreement_section(doc: Doc, s: dict[str, Any]) -> None:
    """Kendall τ between the metrics' rankings and the significant paired differences."""
    ag = s.get("agreement") or {}
    if len(ag.get("metrics", [])) >= 2:
        doc.h(1, "Do the metrics agree?")
        doc.fig(
            "agreement",
            plots.agreement_heatmap(ag["metrics"], ag["tau"]),
            "Kendall τ between the method rankings of each pair of metrics (directions honoured).",
        )
    tests = s.get("paired_tests") or []
    if tests:
        doc.h(2, "Significant paired differences")
        doc.p(
            "Paired tests on the same pairs (Wilcoxon signed-rank; sign test for 0/1 outcomes), Holm-corrected "
            "per metric. One matrix per metric: ▲ the row's method is significantly better than the column's, "
            "▼ significantly worse, · no significant difference (the full list with p-values is summary.json's "
            "paired_tests)."
        )
        order = [m for m in s.get("methods", [])]
        for metric in dict.fromkeys(t["metric"] for t in tests):
            cell: dict[tuple[str, str], str] = {}
            for t in (t for t in tests if t["metric"] == metric):
                a, b, better = t["a"], t["b"], t.get("better")
                cell[(a, b)] = "▲" if better == a else "▼" if better == b else "·"
                cell[(b, a)] = "▲" if better == b else "▼" if better == a else "·"
            names = [m for m in order if any(m in k for k in cell)]
            names += sorted({m for k in cell for m in k} - set(names))
            doc.table(
                f"{metric}: row vs column",
                ["", *names],
                [[r, *("" if r == c else cell.get((r, c), "") for c in names)] for r in names],
            )


def verification_section(doc: Doc, v: dict[str, Any] | None) -> None:
    doc.h(1, "Verification of the ground-truth models (BAM Fig. 2)")
    if not v:
        doc.p("No verification result was found (run 'bamkit verify'); RMCS used the paper's accuracy drop.")
        return
    failed = [c for c in v.get("checks") or [] if not c.get("passed")]
    if failed:
        doc.banner(
            f"Verification failed ({len(failed)} premise(s)): "
            + "; ".join(c["name"] for c in failed)
            + " — the ground truth the BAM metrics rest on does not hold for these models"
        )
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
        doc.fig("verify_k", k_series_png(ks), "Verification of the k-models.")
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


def provenance_section(doc: Doc, s: dict[str, Any]) -> None:
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
    ex = s.get("execution")
    if ex:
        fid = ex.get("fidelity") or {}
        doc.table(
            "Execution (the fast path on CUDA: bf16, channels_last, compiled; exact fp32 elsewhere; BatchNorm folded "
            "where asked)",
            ["device", "precision", "channels_last", "compile", "BatchNorm folded", "fidelity vs exact fp32"],
            [[ex.get("device"), ex.get("precision"), ex.get("channels_last"), ex.get("compile"),
              ex.get("fold_bn", False),
              "exact (fp32 eager)" if ex.get("fidelity") is None else f"{fid.get('images', 0)} images"]],
        )  # fmt: skip
        if fid.get("spearman"):
            doc.table(
                "Fidelity of these maps: Spearman rank correlation with exact (fp32 eager, unfolded) maps, per method",
                ["method", "Spearman ρ"],
                [[m, v] for m, v in fid["spearman"].items()],
            )
    counts = s.get("counts", {})
    if counts.get("nonfinite_maps"):
        doc.table(
            "Non-finite maps (NaN/Inf): those images are excluded from every score and the method is not ranked",
            ["method", "images"],
            [[k, v] for k, v in counts["nonfinite_maps"].items()],
        )
    if counts.get("degenerate_maps"):
        doc.table(
            "Degenerate maps (constant or non-finite before scaling; docs/conventions.md#saliency-modes)",
            ["method", "count"],
            [[k, v] for k, v in counts["degenerate_maps"].items()],
        )
    doc.table("Versions", ["package", "version"], [[k, v] for k, v in prov.get("versions", {}).items()])
    doc.pre(yaml.safe_dump(s["suite"], sort_keys=False, allow_unicode=True))
