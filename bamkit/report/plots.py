"""Paper-style figures from a results summary (matplotlib, Agg, PNG bytes).

* :func:`metric_bars`: one metric per method with its 95 % CI, and a baseline — the random-region value per
  method (MCS, BAM Fig. 4) or a constant line (IDR's 50 %, BAM Fig. 8).
* :func:`rmcs_figure`: relative MCS over k per method against the accuracy drop (BAM Fig. 6/13).
* :func:`agreement_heatmap`: Kendall τ between the metrics' method rankings.
* :func:`stability_curves`: mean Kendall τ and cosine against the deviation level per method and protocol.
* :func:`stability_scatter`: τ against cosine per (image, level), coloured by the level (Park's figure).
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLOR = "#3b6ea5"
_BASE = "#c77c2e"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def metric_bars(
    rows: list[dict],
    metric: str,
    title: str,
    ylabel: str,
    methods: list[str],
    baseline_rows: list[dict] | None = None,
    baseline_line: float | None = None,
    baseline_label: str | None = "random region",
    line_label: str = "chance level",
) -> bytes:
    """Bars of ``metric`` per method (value, 95 % bootstrap CI as error bars), optional baselines: a bar per
    method (``baseline_rows``, labelled ``baseline_label``) and a constant line (``line_label``)."""
    by = {r["method"]: r for r in rows if r["metric"] == metric}
    names = [m for m in methods if m in by]
    vals = np.array([_num(by[m]["value"]) for m in names])
    lo = np.array([_num(by[m].get("ci_low")) for m in names])
    hi = np.array([_num(by[m].get("ci_high")) for m in names])
    err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)]).clip(min=0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 1.5), 3.2))
    x = np.arange(len(names))
    width = 0.38 if baseline_rows else 0.7
    ax.bar(
        x - (width / 2 if baseline_rows else 0), vals, width, yerr=err, color=_COLOR, capsize=3, label=metric
    )
    if baseline_rows:
        bb = {r["method"]: r for r in baseline_rows}
        bv = np.array([_num(bb.get(m, {}).get("value")) for m in names])
        ax.bar(x + width / 2, bv, width, color=_BASE, alpha=0.8, label=baseline_label)
    if baseline_line is not None:
        ax.axhline(baseline_line, color="gray", ls="--", lw=1.2, label=f"{line_label} ({baseline_line:g})")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if baseline_rows or baseline_line is not None:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def rmcs_figure(
    series: dict[str, dict[str, float]],
    acc_drop: dict[str, float],
    rho: dict[str, float],
    dotted: frozenset[str] | set[str] = frozenset(),
) -> bytes:
    """Relative MCS vs k per method (left axis) and the accuracy drop when the CF is removed (right axis);
    ``dotted``: concept methods (TCAV), drawn dotted as in BAM Fig. 6."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for method, s in series.items():
        ks = sorted(s, key=float)
        r = rho.get(method)
        lab = f"{method} (ρ={r:.2f})" if r is not None and math.isfinite(r) else method
        style = {"ls": ":", "lw": 2.0} if method in dotted else {"lw": 1.2}
        ax.plot([float(k) for k in ks], [_num(s[k]) for k in ks], marker="o", ms=3, label=lab, **style)
    ax.set_xlabel("k (fraction of scene classes with the dog)")
    ax.set_ylabel("relative MCS  MCS(f_k, f_1.0)")
    ax2 = ax.twinx()
    ks = sorted(acc_drop, key=float)
    ax2.plot([float(k) for k in ks], [_num(acc_drop[k]) for k in ks], "k--", lw=1.2, label="accuracy drop")
    ax2.set_ylabel("accuracy drop without the dog (pp)")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.15, 1.0))
    ax.set_title("Relative model contrast vs. accuracy drop (BAM Fig. 6/13)", fontsize=10)
    return _png(fig)


def agreement_heatmap(metrics: list[str], tau: list[list[float | None]]) -> bytes:
    """Kendall τ between the metrics' rankings of the methods (1 = identical order)."""
    m = np.array([[_num(v) for v in row] for row in tau], dtype=float)
    fig, ax = plt.subplots(figsize=(0.55 * len(metrics) + 2.2, 0.5 * len(metrics) + 1.6))
    im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(metrics)), metrics, rotation=45, ha="right")
    ax.set_yticks(range(len(metrics)), metrics)
    for i in range(len(metrics)):
        for j in range(len(metrics)):
            if math.isfinite(m[i, j]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(m[i, j]) > 0.6 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, label="Kendall τ")
    ax.set_title("Agreement between metric rankings", fontsize=10)
    return _png(fig)


PROTOCOL_TITLES = {
    "noise": "protocol 1: input noise x + ε·u",
    "masking": "protocol 2: top-ratio pixels removed",
}
PROTOCOL_AXIS = {"noise": "ε (normalised units)", "masking": "removed ratio"}


def stability_curves(levels: list[dict], methods: list[str], protocols: list[str]) -> bytes:
    """Mean Kendall τ (top row) and mean cosine (bottom row) against the deviation level, one column per
    protocol, one line per method (docs/metrics.md#stability; Park Figs. 1–2 summarised as curves).

    Args:
        levels: ``summary.json["stability"]["levels"]`` records (method, protocol, level, tau_mean, ...).
    """
    fig, axes = plt.subplots(2, len(protocols), figsize=(4.2 * len(protocols) + 1.8, 5.6), squeeze=False)
    for c, proto in enumerate(protocols):
        for r, (key, label) in enumerate((("tau_mean", "mean Kendall τ"), ("cosine_mean", "mean cosine"))):
            ax = axes[r][c]
            for m in methods:
                pts = sorted(
                    (float(d["level"]), _num(d.get(key)))
                    for d in levels
                    if d["method"] == m and d["protocol"] == proto
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, lw=1.2, label=m)
            ax.set_xlabel(PROTOCOL_AXIS.get(proto, "level"))
            ax.set_ylabel(label)
            if r == 0:
                ax.set_title(PROTOCOL_TITLES.get(proto, proto), fontsize=10)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return _png(fig)


def stability_scatter(
    points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    protocol: str,
    pearson: dict[str, float] | None = None,
    ncols: int = 5,
) -> bytes:
    """Park's figure: Kendall τ (y) against cosine (x) for every (image, level), coloured by the level; one
    panel per method (methods in the order of ``points``).

    Args:
        points: method -> (cosine, tau, level) arrays of equal length.
        pearson: method -> Pearson r(τ, cosine), shown in the panel titles.
    """
    from matplotlib.colors import Normalize

    names = list(points)
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 1.0, 2.4 * nrows + 0.4), squeeze=False)
    all_levels = np.concatenate([p[2] for p in points.values()]) if names else np.zeros(1)
    norm = Normalize(vmin=float(np.nanmin(all_levels)), vmax=float(np.nanmax(all_levels)) or 1.0)
    sc = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(names):
            ax.axis("off")
            continue
        m = names[k]
        cos, tau, lv = points[m]
        sc = ax.scatter(cos, tau, c=lv, cmap="viridis", norm=norm, s=9, alpha=0.8, edgecolors="none")
        r = (pearson or {}).get(m)
        ax.set_title(f"{m} (r={r:.2f})" if r is not None and math.isfinite(r) else m, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("Kendall τ", fontsize=8)
        if k >= (nrows - 1) * ncols or k + ncols >= len(names):
            ax.set_xlabel("cosine", fontsize=8)
    fig.subplots_adjust(hspace=0.5, wspace=0.3)
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), fraction=0.025, label=PROTOCOL_AXIS.get(protocol, "level"))
    fig.suptitle(f"Kendall τ vs cosine — {PROTOCOL_TITLES.get(protocol, protocol)}", fontsize=10, y=1.03)
    return _png(fig)
