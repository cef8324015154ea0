"""The report of a results folder as a :class:`~bamkit.report.html.Doc`: the sections in reading order."""

from __future__ import annotations

from pathlib import Path

from bamkit.report import grids
from bamkit.report import stability as stab
from bamkit.report.html import Doc
from bamkit.report.inputs import load_summary
from bamkit.report.sections import (
    agreement_section,
    bam_section,
    faithfulness_section,
    findings_section,
    is_baseline,
    leaderboard,
    method_params,
    provenance_section,
    verification_section,
)


def build_document(results: str | Path) -> Doc:
    """The report of ``results`` as a :class:`~bamkit.report.html.Doc` (rendered by the writers)."""
    results = Path(results)
    s = load_summary(results)
    suite = s["suite"]
    methods = method_params(s)
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

    findings_section(doc, s)
    doc.h(1, "Leaderboard")
    for metric in metrics:
        if is_baseline(metric) or metric in stab.SECTION_ONLY:  # baselines; stability's own section
            continue
        leaderboard(doc, s, metric, methods)

    bam_section(doc, s, order, methods)
    faithfulness_section(doc, s, order, methods)
    stab.add_section(doc, s, results, order)
    agreement_section(doc, s)
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

    verification_section(doc, s.get("verification"))
    provenance_section(doc, s)
    return doc
