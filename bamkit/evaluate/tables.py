"""Tidy tables and the summary: per-image rows → per-pair values → per method × metric leaderboard.

* ``per_image``: one row per (scenario, model, set, image, method): target, prediction, correct, g_c, the
  random-region g_c and every per-image score (CSV, plus Parquet when pyarrow is installed).
* ``per_pair``: every scenario's per-pair values (:func:`bamkit.evaluate.scenarios.pair_table`), with the
  correctness filter.
* ``summary``: per metric × method the full-pool value, n, the paper's trial protocol (mean ± std over
  ``n_trials`` random subsets of ``trial_size`` pairs, docs/conventions.md#statistics), a bootstrap 95 % CI and
  the rank; then each scenario's own rows (:meth:`~bamkit.evaluate.scenarios.base.Scenario.summary`: TCAV's,
  relative MCS's ρ against the accuracy drop, the stability correlations) and ``summary.json`` sections.
* ``summary.json``: all of it plus paired tests between methods, the metric-ranking agreement and provenance,
  for the report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bamkit import atomic
from bamkit.evaluate import scenarios
from bamkit.evaluate.pairs import PairTable
from bamkit.evaluate.scenarios.base import SummaryContext
from bamkit.evaluate.suite import Samples, Suite
from bamkit.metrics.functional import Score
from bamkit.metrics.registry import METRICS, direction
from bamkit.provenance import derive_seed

SUMMARY_COLUMNS = [
    "metric",
    "method",
    "value",
    "n",
    "trial_mean",
    "trial_std",
    "ci_low",
    "ci_high",
    "rank",
    "higher_is_better",
    "reference",
]


def write_table(df: pd.DataFrame, path: Path) -> list[Path]:
    """``path`` as CSV (always; pandas reads it directly) and ``.parquet`` beside it when pyarrow is present."""
    written = []
    with atomic.atomic_path(path.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    written.append(path.with_suffix(".csv"))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    with atomic.atomic_path(path.with_suffix(".parquet")) as tmp:
        df.to_parquet(tmp, index=False)
    written.append(path.with_suffix(".parquet"))
    return written


def _rank(values: pd.Series, higher: bool | None, reference: pd.Series, excluded: pd.Series) -> pd.Series:
    """Ranks among the methods that are neither references nor had images excluded for non-finite maps (those
    keep NaN: shown with their count, never ranked)."""
    out = pd.Series(np.nan, index=values.index)
    if higher is None:
        return out
    keep = ~reference.astype(bool) & ~(excluded.fillna(0) > 0)
    out[keep] = values[keep].rank(ascending=not higher, method="min")
    return out


def nonfinite_counts(per_image: pd.DataFrame | None) -> dict[tuple[str, str], int]:
    """(scenario, method) -> maps (model, set, image) whose attributions held NaN/Inf (excluded from that scenario's
    scores); a scenario with several rows per image (stability's levels) counts each image once."""
    if per_image is None or "nonfinite" not in per_image or not len(per_image):
        return {}
    d = per_image[per_image["nonfinite"].fillna(False).astype(bool)]
    d = d.drop_duplicates(
        [c for c in ("scenario", "method", "model", "set", "image") if c in d]
    )  # one per map
    return {(str(s), str(m)): int(n) for (s, m), n in d.groupby(["scenario", "method"]).size().items()}


def reference_methods(suite: Suite) -> set[str]:
    """Labels of the suite's input-independent reference methods (``Method.reference``, e.g. random)."""
    from bamkit.evaluate.methods import build

    return {m.label for m in suite.methods if getattr(build(m), "reference", False)}


def summarize_metric(
    values: np.ndarray, samples: Samples, seed: int, metric: str, method: str, score: Score | None = None
) -> dict[str, Any]:
    """Full-pool value, trial mean/std and bootstrap CI of one method's included per-pair values.

    Args:
        score: the metric's registered function's result for these pairs (value and n); without one (per-image
            metrics) the value is the mean of the included values.
    """
    from bamkit.metrics import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    row: dict[str, Any] = {"metric": metric, "method": method, "n": int(len(v) if score is None else score.n)}
    if len(v) == 0:
        row.update(value=math.nan, trial_mean=math.nan, trial_std=math.nan, ci_low=math.nan, ci_high=math.nan)
        return row
    seed = derive_seed(seed, "stats", metric) % (2**31)  # same subsets for every method: paired
    row["value"] = float(v.mean()) if score is None else float(score.value)
    tr = stats.trials(v, n_trials=samples.n_trials, trial_size=samples.trial_size, seed=seed)
    row["trial_mean"], row["trial_std"] = tr.mean, tr.std
    ci = stats.bootstrap_ci(v, n_boot=samples.n_boot, alpha=samples.alpha, seed=seed)
    row["ci_low"], row["ci_high"] = ci.low, ci.high
    return row


def paired_tests(
    pairs: pd.DataFrame, alpha: float = 0.05, skip: set[str] = frozenset()
) -> list[dict[str, Any]]:
    """Paired tests between every two methods on the pairs both include, Holm-corrected per metric
    (``bamkit.metrics.stats.paired_comparisons``): Wilcoxon signed-rank, or the sign test for 0/1 outcomes.

    Args:
        skip: scenarios whose pairs are not compared (those that summarise their pairs themselves)."""
    from bamkit.metrics import stats

    out = []
    for metric, d in pairs[pairs["included"] & ~pairs["scenario"].isin(skip)].groupby("metric", sort=False):
        hib = direction(metric)
        if hib is None:
            continue
        wide = d.pivot_table(index="pair", columns="method", values="value", aggfunc="first").dropna()
        if wide.shape[1] < 2 or len(wide) < 2:
            continue
        # 0/1 outcomes (IDR, IIR hits) are all ties: the sign test is the exact paired test for them
        binary = bool(np.isin(wide.to_numpy(), (0.0, 1.0)).all())
        test = "sign" if binary else "wilcoxon"
        for c in stats.paired_comparisons(
            {m: wide[m].to_numpy() for m in wide.columns}, test=test, higher_is_better=hib, alpha=alpha
        ):
            out.append(
                {
                    "metric": metric,
                    "test": test,
                    "a": c.a,
                    "b": c.b,
                    "n": c.n,
                    "mean_diff": c.mean_diff,
                    "statistic": c.statistic,
                    "p_value": c.p,
                    "p_holm": c.p_holm,
                    "better": c.better,
                }
            )
    return out


def ranking_agreement(summary: pd.DataFrame) -> dict[str, Any]:
    """Kendall τ between the method rankings of every two metrics (directions honoured), as a matrix."""
    from bamkit.metrics import stats

    scored = summary[summary["higher_is_better"].notna() & summary["value"].notna() & ~summary["reference"]]
    table = {
        m: dict(zip(d["method"], d["value"].astype(float)))
        for m, d in scored.groupby("metric", sort=False)
        if d["method"].nunique() >= 2
    }
    metrics = list(table)
    hib = {m: direction(m) for m in metrics}
    mat = [[1.0 if i == j else math.nan for j in range(len(metrics))] for i in range(len(metrics))]
    for a in stats.ranking_agreement(table, hib):
        i, j = metrics.index(a.metric_a), metrics.index(a.metric_b)
        mat[i][j] = mat[j][i] = a.tau
    return {"metrics": metrics, "tau": mat}


def summarize(
    pairs: PairTable,
    suite: Suite,
    acc_drop: dict[float, float] | None = None,
    per_image: pd.DataFrame | None = None,
    once: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The leaderboard (one row per metric × method) and the extra JSON sections (each scenario's, paired tests,
    agreement).

    Args:
        acc_drop: the verified accuracy drop per k, for relative MCS (None: the paper's).
        per_image: the per-image table the scenarios' own summaries read.
        once: scenario -> what it computed once per evaluation (TCAV's scores).
    """
    frame = pairs.frame
    per_image = per_image if per_image is not None else pd.DataFrame()
    nonfinite = nonfinite_counts(per_image)
    own = scenarios.unsummarized(suite)  # scenarios that summarise their pairs themselves
    rows = []
    inc = frame[frame["included"]] if len(frame) else frame
    order = [m.label for m in suite.methods]
    for metric in frame.loc[~frame["scenario"].isin(own), "metric"].unique() if len(frame) else []:
        d = inc[inc["metric"] == metric]
        scenario = METRICS.get(metric).scenario
        for method in order:
            if ((frame["metric"] == metric) & (frame["method"] == method)).any():
                vals = d.loc[d["method"] == method, "value"].to_numpy(float)
                score = pairs.scores.get((metric, method))
                row = summarize_metric(vals, suite.samples, suite.seed, metric, method, score)
                failed = pairs.excluded_delta.get(scenario, {})
                if method in failed:
                    row["n_delta_failed"] = failed[method]  # shown beside IIR and App. C
                row["n_nonfinite"] = nonfinite.get((scenario, method), 0)
                rows.append(row)
    ctx = SummaryContext(suite, per_image, pairs, acc_drop, once or {})
    extra_rows, sections = scenarios.summary_extras(ctx, nonfinite)
    rows.extend(extra_rows)
    summary = pd.DataFrame(rows)
    if summary.empty:
        summary = pd.DataFrame(columns=SUMMARY_COLUMNS)
    summary["higher_is_better"] = summary["metric"].map(direction)
    summary["reference"] = summary["method"].isin(reference_methods(suite))
    summary["rank"] = np.nan
    for metric, idx in summary.groupby("metric", sort=False).groups.items():
        rows = summary.loc[idx]
        excl = rows["n_nonfinite"] if "n_nonfinite" in rows else pd.Series(0, index=idx)
        summary.loc[idx, "rank"] = _rank(rows["value"], direction(metric), rows["reference"], excl)
    cols = [c for c in SUMMARY_COLUMNS if c in summary] + [c for c in summary if c not in SUMMARY_COLUMNS]
    summary = summary[cols]
    extra = {
        **sections,
        "paired_tests": paired_tests(frame, suite.samples.alpha, own) if len(frame) else [],
        "agreement": ranking_agreement(summary),
    }
    return summary, extra


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(_clean(data), indent=1, sort_keys=False))


def nonfinite_warnings(summary: pd.DataFrame, methods: list[str] | None = None) -> list[str]:
    """One line per method (of ``methods``, default all) whose maps held NaN/Inf somewhere: the leaderboard shows
    its values without a rank, and this says why (``n_nonfinite`` in ``summary.csv``)."""
    if "n_nonfinite" not in summary:
        return []
    rows = summary[summary["n_nonfinite"].fillna(0) > 0]
    if methods is not None:
        rows = rows[rows["method"].isin(methods)]
    return [
        f"warning: {method}: {int(n)} attribution maps hold NaN/Inf; those images are excluded from its scores "
        "and it is not ranked (see n_nonfinite in summary.csv)"
        for method, n in rows.groupby("method")["n_nonfinite"].max().items()
    ]
