"""The report of a results folder as a :class:`~bamkit.report.html.Doc`: the sections in reading order."""

from __future__ import annotations

from pathlib import Path

from bamkit.report import grids
from bamkit.report import stability as stab
from bamkit.report.html import Doc
from bamkit.report.info import is_baseline
from bamkit.report.inputs import load_summary
from bamkit.report.parts import ReportContext, scenario_sections
from bamkit.report.placement import placement_section
from bamkit.report.sections import (
    agreement_section,
    findings_section,
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
        f"Methods: {', '.join(order)}. Metrics: {', '.join(_metric_names(suite))}. Data: "
        f"{prov.get('data', '?')} (sha256 {str(prov.get('data_hash', ''))[:16]}…). Seed {suite.get('seed')}. "
        f"Values are full-pool means over correctly classified pairs with 95 % bootstrap CIs; 'trials' are "
        f"{suite.get('samples', {}).get('n_trials')} random subsets of "
        f"{suite.get('samples', {}).get('trial_size')} pairs (BAM's protocol)."
    )
    if s.get("skipped"):
        doc.p("Skipped scenarios: " + "; ".join(f"{k}: {v}" for k, v in s["skipped"].items()))

    # a scoring run leads with the new methods' placement; the paper's findings stay, below it, without banners
    placement_section(doc, s)
    findings_section(doc, s, banners=not s.get("scored"))
    doc.h(1, "Leaderboard")
    for metric in metrics:
        if is_baseline(s, metric) or metric in stab.SECTION_ONLY:  # baselines; stability's own section
            continue
        leaderboard(doc, s, metric, methods)

    scenario_sections(doc, ReportContext(s, results, order, methods))
    agreement_section(doc, s)
    ex = grids.load_examples(results)
    titled = [(sc["name"], sc.get("grid_title")) for sc in s.get("scenarios") or [] if sc.get("grid_title")]
    if any(name in ex for name, _ in titled):
        doc.h(1, "Saliency maps")
        for name, caption in titled:
            if name in ex:
                doc.fig(f"grid_{name}", grids.saliency_grid(caption, ex[name], order), caption)

    verification_section(doc, s.get("verification"))
    provenance_section(doc, s)
    return doc


def _metric_names(suite: dict) -> list[str]:
    """The suite's metrics as written in summary.json: names, or ``{name: ..., settings}`` entries."""
    return [m["name"] if isinstance(m, dict) else str(m) for m in suite.get("metrics", [])]
