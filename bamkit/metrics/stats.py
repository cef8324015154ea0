"""Statistics over per-image / per-pair metric values (docs/conventions.md#statistics): BAM's 10 trials of 100 pairs,
bootstrap confidence intervals, paired method comparisons with Holm's correction, agreement between metric
rankings, and correlations with p-values. numpy/scipy on small 1-D arrays; NaN rows are dropped and counted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bamkit.errors import ConfigError


def _finite(values) -> tuple[np.ndarray, int]:
    a = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(
        -1
    )
    ok = np.isfinite(a)
    return a[ok], int((~ok).sum())


@dataclass(frozen=True)
class TrialsResult:
    """Mean ± std of a metric over random subsets (BAM: "10 trials of 100 image pairs").

    Attributes:
        mean, std: over the trial means (std with ``ddof``). full: the full-pool value.
        trial_means: each trial's mean. trial_size: pairs per trial actually used (≤ the request when the
        pool is smaller). n: pool size. n_dropped: NaN rows left out of the pool.
    """

    mean: float
    std: float
    full: float
    trial_means: tuple[float, ...]
    trial_size: int
    n: int
    n_dropped: int


def trials(values, n_trials: int = 10, trial_size: int = 100, seed: int = 0, ddof: int = 1) -> TrialsResult:
    """Mean and std over ``n_trials`` subsets of ``trial_size`` pairs drawn without replacement (within a
    subset) from the pool of finite values (docs/conventions.md#statistics). IDR/IIR per-pair booleans give proportions.

    A pool smaller than ``trial_size`` uses the whole pool in every trial (std 0) — ``trial_size`` in the
    result says so. An empty pool gives NaNs with ``n == 0``.
    """
    if n_trials < 1 or trial_size < 1:
        raise ConfigError(f"trials: n_trials and trial_size must be >= 1, got {n_trials}, {trial_size}")
    a, dropped = _finite(values)
    n = len(a)
    if n == 0:
        return TrialsResult(math.nan, math.nan, math.nan, (), 0, 0, dropped)
    rng = np.random.default_rng(seed)
    size = min(trial_size, n)
    full = float(a.mean())
    if size == n:  # every trial is the whole pool: exactly the full mean, std exactly 0
        return TrialsResult(full, 0.0, full, (full,) * n_trials, size, n, dropped)
    means = np.array([a[rng.choice(n, size, replace=False)].mean() for _ in range(n_trials)])
    std = float(means.std(ddof=ddof)) if n_trials > ddof else math.nan
    return TrialsResult(float(means.mean()), std, full, tuple(means.tolist()), size, n, dropped)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    value: float
    low: float
    high: float
    n: int
    n_dropped: int = 0


def bootstrap_ci(
    values,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
    statistic: Literal["mean", "median"] | Callable[[np.ndarray], np.ndarray] = "mean",
    chunk: int = 1000,
) -> Interval:
    """Percentile bootstrap (1 − alpha) CI of a statistic of the finite values — means, or proportions when
    the values are 0/1 (IDR, IIR hits).

    Args:
        statistic: ``"mean"``, ``"median"``, or ``f(samples (B, n)) -> (B,)`` applied row-wise.
        chunk: resamples drawn at once (bounds memory at chunk·n).
    """
    if not 0 < alpha < 1 or n_boot < 1:
        raise ConfigError(f"bootstrap_ci: expected 0 < alpha < 1 and n_boot >= 1, got {alpha}, {n_boot}")
    fn = (
        {"mean": lambda s: s.mean(1), "median": lambda s: np.median(s, 1)}.get(statistic, statistic)
        if isinstance(statistic, str)
        else statistic
    )
    if not callable(fn):
        raise ConfigError(f"bootstrap_ci: statistic {statistic!r} is not 'mean', 'median' or a callable")
    a, dropped = _finite(values)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, dropped)
    rng = np.random.default_rng(seed)
    stats = []
    for s in range(0, n_boot, chunk):
        b = min(chunk, n_boot - s)
        stats.append(fn(a[rng.integers(0, n, size=(b, n))]))
    stats = np.concatenate(stats)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Interval(float(fn(a[None])[0]), float(lo), float(hi), n, dropped)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (monotone, capped at 1); NaN p-values stay NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


@dataclass(frozen=True)
class Comparison:
    """One paired comparison between methods ``a`` and ``b`` on the same rows."""

    a: str
    b: str
    n: int
    mean_diff: float
    statistic: float
    p: float
    p_holm: float
    better: str | None  # the significantly better method at ``alpha`` after correction, else None


def paired_comparisons(
    scores: Mapping[str, Sequence[float]],
    test: Literal["wilcoxon", "sign"] = "wilcoxon",
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> list[Comparison]:
    """All pairwise paired tests between methods scored on the same rows, Holm-corrected across the pairs.

    * ``"wilcoxon"``: two-sided Wilcoxon signed-rank (``scipy.stats.wilcoxon``, zero differences dropped —
      Wilcox's convention); statistic = the smaller rank sum.
    * ``"sign"``: two-sided exact binomial sign test on the non-zero differences; statistic = #(a > b).

    Rows where either method is NaN are dropped for that pair.

    Args:
        scores: method -> (N,) per-row values, the same rows in the same order for every method.
    """
    from scipy import stats

    names = list(scores)
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    lens = {len(v) for v in arrays.values()}
    if len(lens) > 1:
        raise ConfigError(
            f"paired_comparisons: methods have different row counts {sorted(lens)}; pair the rows"
        )
    raw = []
    for a, b in itertools.combinations(names, 2):
        x, y = arrays[a], arrays[b]
        ok = np.isfinite(x) & np.isfinite(y)
        d = x[ok] - y[ok]
        nz = d[d != 0]
        if len(nz) == 0:
            stat, p = math.nan, 1.0 if len(d) else math.nan
        elif test == "wilcoxon":
            r = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
            stat, p = float(r.statistic), float(r.pvalue)
        elif test == "sign":
            k = int((nz > 0).sum())
            stat, p = float(k), float(stats.binomtest(k, len(nz), 0.5).pvalue)
        else:
            raise ConfigError(f"paired_comparisons: test {test!r} is not 'wilcoxon' or 'sign'")
        raw.append((a, b, int(ok.sum()), float(d.mean()) if len(d) else math.nan, stat, p))
    adj = holm([r[5] for r in raw])
    out = []
    for (a, b, n, md, stat, p), pa in zip(raw, adj):
        better = None
        if np.isfinite(pa) and pa < alpha and md != 0:
            better = a if (md > 0) == higher_is_better else b
        out.append(Comparison(a, b, n, md, stat, p, float(pa), better))
    return out


def _corr(x, y, fn) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ConfigError(f"correlation: x has {len(x)} values and y {len(y)}; expected equal lengths")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    r = fn(x, y)
    return float(r[0]), float(r[1])


def pearson(x, y) -> tuple[float, float]:
    """Pearson r and two-sided p (scipy); NaN pairs dropped; (NaN, NaN) for < 3 points or a constant side."""
    from scipy import stats

    return _corr(x, y, stats.pearsonr)


def spearman(x, y) -> tuple[float, float]:
    """Spearman ρ and two-sided p (scipy), same conventions as :func:`pearson`."""
    from scipy import stats

    return _corr(x, y, stats.spearmanr)


@dataclass(frozen=True)
class Agreement:
    """Kendall τ-b between the method rankings of two metrics (both oriented so that better = higher)."""

    metric_a: str
    metric_b: str
    tau: float
    p: float
    n_methods: int


def ranking_agreement(
    table: Mapping[str, Mapping[str, float]],
    higher_is_better: Mapping[str, bool | None],
) -> list[Agreement]:
    """Agreement between metric rankings: for each pair of metrics, Kendall τ between their rankings of the
    methods both scored (finite values). Each metric's scores are negated when lower is better, so τ = 1
    means the two metrics order the methods identically. Metrics with ``higher_is_better=None`` (not a
    score) are skipped.

    Args:
        table: metric -> method -> aggregate score.
        higher_is_better: metric -> direction (e.g. from the metric registry).
    """
    from scipy import stats

    metrics = [m for m in table if higher_is_better.get(m) is not None]
    missing = [m for m in table if m not in higher_is_better]
    if missing:
        raise ConfigError(f"ranking_agreement: no direction for metrics {missing}; pass higher_is_better")
    out = []
    for a, b in itertools.combinations(metrics, 2):
        common = [
            k for k in table[a] if k in table[b] and np.isfinite(table[a][k]) and np.isfinite(table[b][k])
        ]
        sa = np.array([table[a][k] for k in common]) * (1 if higher_is_better[a] else -1)
        sb = np.array([table[b][k] for k in common]) * (1 if higher_is_better[b] else -1)
        if len(common) < 2 or np.ptp(sa) == 0 or np.ptp(sb) == 0:
            out.append(Agreement(a, b, math.nan, math.nan, len(common)))
            continue
        r = stats.kendalltau(sa, sb)
        out.append(Agreement(a, b, float(r.statistic), float(r.pvalue), len(common)))
    return out
