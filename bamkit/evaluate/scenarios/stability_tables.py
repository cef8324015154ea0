"""The stability scenario's tables from its per-image rows: per-image means over the levels as per-pair
metrics ``kendall_<protocol>`` / ``cosine_<protocol>``; per method × protocol × level means (:func:`level_table`);
and per method × protocol the Pearson r(τ, cosine) over all (image, level) points and the Spearman ρ(τ, level)
(:func:`correlation_rows`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bamkit.metrics.registry import METRICS

if TYPE_CHECKING:
    from bamkit.evaluate.scenarios.stability import StabilitySettings

PROTOCOLS = ("noise", "masking")


def _points(per_image: pd.DataFrame, st: StabilitySettings) -> pd.DataFrame:
    """The stability rows kept for summaries (the ``correct_only`` filter applied)."""
    if per_image.empty or "protocol" not in per_image:
        return per_image.iloc[0:0]
    d = per_image[per_image["scenario"] == "stability"]
    if st.correct_only:
        d = d[d["correct"].astype(bool)]
    return d


def pair_rows(per_image: pd.DataFrame, st: StabilitySettings) -> pd.DataFrame:
    """Per-image means over the levels as per-pair rows ``kendall_<protocol>`` / ``cosine_<protocol>``
    (the levels where the value is defined; NaN levels are counted in :func:`level_table`)."""
    d = per_image[per_image["scenario"] == "stability"] if "protocol" in per_image else per_image.iloc[0:0]
    out = []
    for proto in PROTOCOLS:
        p = d[d["protocol"] == proto]
        if p.empty:
            continue
        g = p.groupby(["method", "image"], sort=False)
        means = g[["tau", "cosine"]].mean()  # pandas' mean skips NaN
        correct = g["correct"].first().astype(bool)
        keep = correct if st.correct_only else pd.Series(True, index=correct.index)
        for col, metric in (("tau", f"kendall_{proto}"), ("cosine", f"cosine_{proto}")):
            v = means[col].to_numpy(float)
            out.append(
                pd.DataFrame(
                    {
                        "scenario": "stability",
                        "metric": metric,
                        "method": means.index.get_level_values("method"),
                        "pair": means.index.get_level_values("image").astype(np.int64),
                        "value": v,
                        "included": keep.to_numpy(bool) & np.isfinite(v),
                    }
                )
            )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def level_table(per_image: pd.DataFrame, st: StabilitySettings, methods: Sequence[str]) -> pd.DataFrame:
    """Per method × protocol × level: images, undefined values, mean/std of τ and cosine."""
    cols = [
        "method",
        "protocol",
        "level",
        "n",
        "n_undefined",
        "tau_mean",
        "tau_std",
        "cosine_mean",
        "cosine_std",
    ]
    d = _points(per_image, st)
    rows = []
    for method in methods:
        for proto in PROTOCOLS:
            p = d[(d["method"] == method) & (d["protocol"] == proto)]
            for level, q in p.groupby("level", sort=True):
                t, c = q["tau"].to_numpy(float), q["cosine"].to_numpy(float)
                ok = np.isfinite(t)
                rows.append(
                    [
                        method,
                        proto,
                        float(level),
                        int(ok.sum()),
                        int((~ok).sum()),
                        float(t[ok].mean()) if ok.any() else math.nan,
                        float(t[ok].std(ddof=1)) if ok.sum() > 1 else math.nan,
                        float(np.nanmean(c)) if np.isfinite(c).any() else math.nan,
                        float(np.nanstd(c, ddof=1)) if np.isfinite(c).sum() > 1 else math.nan,
                    ]
                )
    return pd.DataFrame(rows, columns=cols)


def correlation_rows(
    per_image: pd.DataFrame, st: StabilitySettings, methods: Sequence[str]
) -> list[dict[str, Any]]:
    """Summary rows per method × protocol: ``tau_cosine_r_<protocol>`` (Pearson r over every finite (image,
    level) point, the quantity Park and Wang & Kong discuss) and ``tau_level_rho_<protocol>`` (Spearman ρ of τ
    with the level; protocol 2 wants a strong negative ρ). Not scores: no rank. The correlation
    functions are the registry's (``bamkit.metrics.stats``)."""
    d = _points(per_image, st)
    rows = []
    for proto in PROTOCOLS:
        for method in methods:
            p = d[(d["method"] == method) & (d["protocol"] == proto)]
            if p.empty:
                continue
            t, c, lv = (p[k].to_numpy(float) for k in ("tau", "cosine", "level"))
            ok = np.isfinite(t) & np.isfinite(c)
            for metric, xs, ys in (
                (f"tau_cosine_r_{proto}", c[ok], t[ok]),
                (f"tau_level_rho_{proto}", lv[np.isfinite(t)], t[np.isfinite(t)]),
            ):
                fn = METRICS.get(metric).function
                r, pv = fn(xs.tolist(), ys.tolist()) if len(xs) >= 3 else (math.nan, math.nan)
                rows.append(
                    {
                        "metric": metric,
                        "method": method,
                        "value": float(r),
                        "n": int(len(xs)),
                        "p_value": float(pv),
                        "trial_mean": math.nan,
                        "trial_std": math.nan,
                        "ci_low": math.nan,
                        "ci_high": math.nan,
                    }
                )
    return rows


def summary_section(per_image: pd.DataFrame, st: StabilitySettings, methods: Sequence[str]) -> dict[str, Any]:
    """The ``stability`` section of ``summary.json`` (the report's curves and tables)."""
    lt = level_table(per_image, st, methods)
    if lt.empty:
        return {}
    return {
        "levels": lt.to_dict(orient="records"),
        "protocols": sorted(set(lt["protocol"]), key=PROTOCOLS.index),
        "variant": st.variant,
        "max_n": st.max_n,
        "fill": st.fill,
        "model": st.model,
        "set": st.set,
        "correct_only": st.correct_only,
    }
