"""The verification result for people: the plain-text table and the k-series figure (BAM Fig. 2)."""

from __future__ import annotations

import io
import math
from typing import Any

from bamkit.metrics.stats import spearman
from bamkit.published import BAM_FIG2_TOP, BAM_K_ACCURACY

_TOP_LABELS = (
    ("acc_full", "accuracy on obj_scene"),
    ("acc_cf_removed", "accuracy, common feature removed"),
    ("conf_rise", "% correct with higher confidence w/o CF"),
    ("acc_only_cf", "accuracy, only CF kept"),
)


def _pct(v: Any) -> str:
    return "   -" if v is None or not math.isfinite(v) else f"{100 * v:5.1f}"


def table(res) -> str:
    """A readable plain-text table of a :class:`~bamkit.verify.result.VerifyResult`: measured beside
    published, then the checks."""
    lines = ["BAM Figure 2 (top): relative feature importance       measured  (published)"]
    if res.sample.get("n_pairs"):
        lines.append(
            f"  (a seeded sample of {res.sample['n_pairs']} validation pairs, seed {res.sample['seed']})"
        )
    for role in ("f_o", "f_s"):
        if role not in res.top:
            continue
        r = res.top[role]
        lines.append(f"  {role} (CF removed: {r['cf_removed_set']}, only CF: {r['only_cf_set']}; n={r['n']})")
        for key, text in _TOP_LABELS:
            n = f"  n={r['n_conf_rise']}" if key == "conf_rise" else ""
            lines.append(f"    {text:<44} {_pct(r[key])}%  ({_pct(BAM_FIG2_TOP[role][key] / 100)}%){n}")
    for name, r in res.extra.items():
        accs = ", ".join(f"{s} {_pct(v)}%" for s, v in r.items() if s != "n")
        lines.append(f"  {name}: {accs}")
    if res.k_series:
        lines.append(
            "BAM Figure 2 (bottom): bamboo-forest accuracy of f_k   with dog / without / drop  (published)"
        )
        for r in res.k_series:
            pub = BAM_K_ACCURACY.get(round(r["k"], 1))
            ptxt = f"({pub[0]:5.1f} / {pub[1]:5.1f} / {pub[0] - pub[1]:5.1f})" if pub else ""
            lines.append(
                f"  k={r['k']:.1f} (n={r['n']:3d})  {_pct(r['acc_with'])} / {_pct(r['acc_without'])} / "
                f"{_pct(r['drop'])}  {ptxt}"
            )
        rho = "n/a" if res.k_rho is None or not math.isfinite(res.k_rho) else f"{res.k_rho:+.3f}"
        ks = sorted(BAM_K_ACCURACY)
        pub_rho = spearman(ks, [BAM_K_ACCURACY[k][0] - BAM_K_ACCURACY[k][1] for k in ks])[0]
        lines.append(f"  Spearman rho(k, drop) = {rho}  (published: {pub_rho:+.3f})")
    lines.append(f"Checks ({'all passed' if res.passed else f'{len(res.failures)} failed'}):")
    lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c}" for c in res.checks] or ["  (no models to check)"]
    return "\n".join(lines)


def k_series_png(series: list[dict[str, Any]]) -> bytes:
    """Bamboo-forest accuracy with / without the dog and the drop against k, measured (solid) and published
    (dashed): BAM Fig. 2 (bottom). The verification files and the report draw this one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def num(v: Any) -> float:
        return math.nan if v is None else 100 * float(v)

    ks = [float(r["k"]) for r in series]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, colour, label in (
        ("acc_with", "C0", "with dog"),
        ("acc_without", "C1", "without dog"),
        ("drop", "C3", "drop"),
    ):
        ax.plot(ks, [num(r.get(key)) for r in series], "o-", color=colour, label=f"{label} (measured)")
    pk = sorted(BAM_K_ACCURACY)
    ax.plot(pk, [BAM_K_ACCURACY[k][0] for k in pk], "--", color="C0", alpha=0.5, label="published")
    ax.plot(pk, [BAM_K_ACCURACY[k][1] for k in pk], "--", color="C1", alpha=0.5)
    ax.plot(pk, [BAM_K_ACCURACY[k][0] - BAM_K_ACCURACY[k][1] for k in pk], "--", color="C3", alpha=0.5)
    ax.set_xlabel("k (share of scene classes with the dog)")
    ax.set_ylabel("bamboo-forest accuracy (%)")
    ax.set_title("BAM Fig. 2 (bottom): dependence on the common feature")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
