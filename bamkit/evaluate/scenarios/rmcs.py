"""Relative MCS (BAM §4.2, Figs. 6 and 13): each commonality model f_k against the reference f_1.0 on the same
images, the series of MCS over k, and its Pearson ρ with the accuracy drop when the dog is removed (the run's
own verified drop, else the paper's: :func:`bamkit.published.accuracy_drop`). Concept methods' series (TCAV's,
from the concept scenario) get their ρ from the same correlation."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from bamkit.errors import DataError
from bamkit.evaluate.legs import Leg, PlanContext, Split, missing_message
from bamkit.evaluate.pairs import PairTable, join, legs_of, pair_metric
from bamkit.evaluate.scenarios.base import Scenario, ScenarioSettings, SummaryContext, register_scenario
from bamkit.metrics.bam import rmcs_correlation
from bamkit.metrics.registry import METRICS
from bamkit.provenance import derive_seed
from bamkit.published import K_GRID, REFERENCE_K, accuracy_drop, k_label, k_model, k_of_model

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RMCSSettings(ScenarioSettings):
    """Relative MCS: every model of ``models`` against ``reference`` on ``set``.

    Args:
        models: the commonality models f_k (k < 1).
        reference: f_1.0, the model every f_k is contrasted with.
        set: the images; BAM's code uses ``dog_bedroom``, ``dog_bamboo_forest`` holds the images whose
            accuracy drop the ρ is taken against.
    """

    split: Split = "all"
    models: tuple[str, ...] = tuple(k_model(k) for k in K_GRID if k != REFERENCE_K)
    reference: str = k_model(REFERENCE_K)
    set: str = "dog_bedroom"


@register_scenario
class RMCSScenario(Scenario):
    """BAM Figs. 6, 13: MCS(f_k, f_1.0) should fall with k as the dog's importance to f_k does."""

    name, Settings = "rmcs", RMCSSettings
    smoke_images = 8
    grid_title = "Relative MCS: an image of the suite's set under the models f_k (BAM Fig. 5)"
    summarize_pairs = False  # its pairs make the series; the leaderboard gets ρ
    report_parts = ("rmcs",)

    def roles(self, suite: Suite) -> tuple[str, ...]:
        return (*self.settings.models, self.settings.reference)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        s = self.settings
        present = [m for m in s.models if m in ctx.roles]
        if len(present) < len(s.models):
            log.warning(
                "evaluate: rmcs: using %d of %d k-models (%s missing)",
                len(present),
                len(s.models),
                ", ".join(m for m in s.models if m not in ctx.roles),
            )
        if not present:
            if not ctx.suite.allow_missing:
                raise DataError(missing_message(self.name, ctx.suite, list(s.models), []))
            ctx.skipped[self.name] = "no k-model found"
            return []
        if not ctx.need(self.name, [s.reference], [s.set]):
            return []
        rows = ctx.rows(s.set, s.split, s.max_images)
        modes = ctx.modes(self.name)
        return [
            Leg(self.name, role, s.set, rows, rows, modes, pool_pairs=rows)
            for role in [*present, s.reference]
        ]

    def pairs(self, per_image: pd.DataFrame, suite: Suite, out: PairTable) -> None:
        s = self.settings
        if not suite.computes(self.name):
            return
        ref = legs_of(per_image, self.name, s.reference, s.set)
        for role in s.models:
            a = legs_of(per_image, self.name, role, s.set)
            if not a.empty:
                label = f"rmcs_{role.removeprefix('f_')}"
                pair_metric(self.name, join(a, ref, "g_c"), "g_c", self.name, out, label)

    def summary(self, ctx: SummaryContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        concept = (ctx.once.get("concept") or {}).get("series", {})
        rows, info = rmcs_rows(ctx.per_image, self.settings, ctx.acc_drop, concept, ctx.suite.samples,
                               ctx.suite.seed)  # fmt: skip
        return rows, {"rmcs": info}


def _rho_rows(method: str, res, full_drop: dict[float, float], series: dict, ci=None) -> list[dict[str, Any]]:
    """The ``rmcs_rho9`` / ``rmcs_rho`` rows of one method's :class:`~bamkit.metrics.bam.RmcsResult`, with the
    bootstrap intervals ``ci`` ({"rmcs_rho9": (lo, hi), "rmcs_rho": (lo, hi)}) when the images are known."""
    series[method] = {k_label(k): s for k, s in zip(res.ks, res.series)}
    x9 = [full_drop[k] for k in res.ks]
    n9 = sum(math.isfinite(a) and math.isfinite(b) for a, b in zip(x9, res.series))
    n10 = n9 + int(math.isfinite(full_drop[REFERENCE_K]))
    nan = math.nan
    ci = ci or {}
    return [
        {"metric": name, "method": method, "value": float(rho), "n": n, "p_value": float(p), "trial_mean": nan,
         "trial_std": nan, "ci_low": ci.get(name, (nan, nan))[0], "ci_high": ci.get(name, (nan, nan))[1]}
        for name, rho, p, n in (("rmcs_rho9", res.rho9, res.p9, n9), ("rmcs_rho", res.rho10, res.p10, n10))
    ]  # fmt: skip


def rho_intervals(
    d: dict[float, np.ndarray], ok: dict[float, np.ndarray], drop: dict[float, float], n_boot: int, alpha: float,
    seed: int,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile bootstrap intervals of ρ (9 and 10 points) over the images the series is computed on: each
    resample draws images with replacement, recomputes every k's MCS on them (the same images for every k and,
    through the seed, for every method) and correlates the series with the drop.

    Args:
        d: k -> (N,) per-image MCS ``g_c(f_k) − g_c(f_ref)``; ok: k -> (N,) bool, the image is scored at k.
        drop: k -> accuracy drop (points), the reference k included.
    """
    ks = sorted(d)
    n = len(next(iter(d.values()))) if d else 0
    if n < 2 or len(ks) < 3:
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    w = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)  # (B, N) resample counts
    vals = np.stack([np.where(ok[k], d[k], 0.0) for k in ks], 1)  # (N, K)
    inc = np.stack([ok[k] for k in ks], 1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        series = (w @ vals) / (w @ inc)  # (B, K): each k's MCS on the resampled images
    out = {}
    x9 = np.array([drop.get(k, math.nan) for k in ks])
    for name, xs, ys in (
        ("rmcs_rho9", x9, series),
        (
            "rmcs_rho",
            np.append(x9, drop.get(REFERENCE_K, math.nan)),
            np.hstack([series, np.zeros((n_boot, 1))]),
        ),
    ):
        keep = np.isfinite(xs)
        x = xs[keep] - xs[keep].mean()
        y = ys[:, keep] - ys[:, keep].mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (y @ x) / (np.linalg.norm(y, axis=1) * np.linalg.norm(x))
        r = r[np.isfinite(r)]
        if len(r) >= 2:
            lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
            out[name] = (float(lo), float(hi))
    return out


def rmcs_rows(
    per_image: pd.DataFrame,
    sc: RMCSSettings,
    acc_drop: dict[float, float] | None,
    concept_series: dict[str, dict[str, float]] | None = None,
    samples: Any = None,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Relative MCS per method by the metric's function (:func:`bamkit.metrics.bam.rmcs_series`): the series
    over k and its Pearson ρ against the accuracy drop, 9 and 10 points; concept methods' series (TCAV, already
    differences of scores) get their ρ from the same correlation (:func:`bamkit.metrics.bam.rmcs_correlation`)."""
    d = per_image[per_image["scenario"] == "rmcs"] if len(per_image) else per_image
    concept_series = concept_series or {}
    if d.empty and not concept_series:
        return [], {}
    rmcs_series = METRICS.get("rmcs").function
    drop, source = accuracy_drop(acc_drop)
    roles = [r for r in sc.models if len(d) and (d["model"] == r).any()]
    ks = sorted({k_of_model(r) for r in roles} | {float(k) for s in concept_series.values() for k in s})
    full_drop = {
        k: drop.get(k, math.nan) for k in [*ks, REFERENCE_K]
    }  # NaN points drop out of ρ, visibly (n)
    ref_all = d[d["model"] == sc.reference]
    series: dict[str, dict[str, float]] = {}
    rows = []
    for method in dict.fromkeys(d.loc[d["model"] == roles[0], "method"]) if roles else ():
        ref = ref_all[ref_all["method"] == method].set_index("pair")
        g_ref = torch.tensor(ref["g_c"].to_numpy(float))
        c_ref = torch.tensor(ref["correct"].to_numpy(bool))
        g_k, c_k = {}, {}
        for role in roles:
            a = d[(d["model"] == role) & (d["method"] == method)].set_index("pair").reindex(ref.index)
            g_k[k_of_model(role)] = torch.tensor(a["g_c"].to_numpy(float))
            c_k[k_of_model(role)] = torch.tensor(a["correct"].fillna(False).to_numpy(bool))
        res = rmcs_series(g_k, g_ref, c_k, c_ref, acc_drop=full_drop)
        ci = {}
        if samples is not None:  # the same resampled images for every method: a paired comparison
            diffs = {k: (g_k[k] - g_ref).numpy() for k in g_k}
            ok = {k: (c_k[k] & c_ref).numpy() & np.isfinite(diffs[k]) for k in g_k}
            ci = rho_intervals(
                diffs, ok, full_drop, samples.n_boot, samples.alpha, derive_seed(seed, "stats", "rmcs_rho")
            )
        rows += _rho_rows(method, res, full_drop, series, ci)
    for method, ser in concept_series.items():
        kk = sorted(float(k) for k in ser)
        res = rmcs_correlation(kk, [ser[k_label(k)] for k in kk], [0] * len(kk), full_drop)
        rows += _rho_rows(method, res, full_drop, series)
    info = {
        "series": series,
        "acc_drop": {k_label(k): v for k, v in drop.items()},
        "acc_drop_source": source,
        "ks": [k_label(k) for k in K_GRID],
    }
    return rows, info
