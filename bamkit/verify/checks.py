"""The premises BAM's ground truth rests on (Yang & Kim 2019, §3.3, Fig. 2) as quantities with margins, judged
on a verification's measurements. The thresholds live here, once, and are printed beside what was measured.

* f_o relies on the object: accurate on X_{o,g} (scene removed), near chance on X_{∅,s} (object removed).
* f_s relies on the scene: accurate on X_{∅,s}, near chance on X_{o,g}; removing the object raises its
  confidence for most correct inputs (the object only distracted it).
* The commonality models depend on the dog less as k grows: a clear accuracy drop without the dog at small k, none
  at k = 1, and a strongly negative rank correlation of the drop with k — measured on enough bamboo-forest images
  for the drops to mean something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bamkit.metrics.stats import spearman


@dataclass(frozen=True)
class Thresholds:
    """The margins of BAM's premises (defaults: the paper's Figure 2 values with margins, docs/reproduction.md#published-numbers).

    Attributes:
        min_full_acc: f_o and f_s accuracy on ``obj_scene`` (the task is learnt at all).
        min_acc_cf_removed: accuracy with the common feature removed (f_o on ``obj_gray``, f_s on
            ``scene_only``); paper 93.1 % / 95.5 %.
        max_chance_ratio: accuracy with only the common feature kept, at most this multiple of chance; paper
            9.7 % / 9.8 % (≈ chance).
        min_conf_rise: f_s: share of inputs correct with and without the object whose true-class probability rises
            without it (paper 79.5 %, docs/reproduction.md#published-numbers).
        min_k_images: bamboo-forest images per k-model (the drop of each k is a difference of two rates).
        max_k_rho: Spearman ρ(k, drop) at most this (paper −0.82).
        max_drop_at_1: the drop of the k = 1.0 model at most this (fraction; paper 0.02).
        min_mean_drop_low_k: the mean drop over k ≤ 0.5 at least this (fraction; paper 0.186).
        min_k_models: fewer k-models than this skips the k checks.
    """

    min_full_acc: float = 0.5
    min_acc_cf_removed: float = 0.8
    max_chance_ratio: float = 2.0
    min_conf_rise: float = 0.6
    min_k_images: int = 50
    max_k_rho: float = -0.7
    max_drop_at_1: float = 0.05
    min_mean_drop_low_k: float = 0.10
    min_k_models: int = 3


@dataclass(frozen=True)
class Check:
    """One premise and whether it held."""

    name: str
    passed: bool
    measured: float | None
    expected: str

    def __str__(self) -> str:
        m = "n/a" if self.measured is None or not math.isfinite(self.measured) else f"{self.measured:.3f}"
        return f"{self.name}: {m} (expected {self.expected})"


def _check(name: str, value: float | None, ok: bool, expected: str) -> Check:
    finite = value is not None and math.isfinite(value)
    return Check(name, bool(finite and ok), value, expected)


def top_checks(role: str, r: dict[str, Any], th: Thresholds) -> list[Check]:
    """f_o's or f_s's premises from its Figure 2 (top) measurements ``r``."""
    limit = th.max_chance_ratio * r["chance"]
    out = [
        _check(f"{role} accuracy on obj_scene", r["acc_full"], r["acc_full"] >= th.min_full_acc,
               f">= {th.min_full_acc:.2f}"),
        _check(f"{role} accuracy on {r['cf_removed_set']} (common feature removed)", r["acc_cf_removed"],
               r["acc_cf_removed"] >= th.min_acc_cf_removed, f">= {th.min_acc_cf_removed:.2f}"),
        _check(f"{role} accuracy on {r['only_cf_set']} (only the common feature kept)", r["acc_only_cf"],
               r["acc_only_cf"] <= limit, f"<= {limit:.3f} = {th.max_chance_ratio:g} x chance"),
    ]  # fmt: skip
    if role == "f_s":
        out.append(
            _check(
                "f_s confidence rises without the object (share of correct inputs)",
                r["conf_rise"],
                r["conf_rise"] >= th.min_conf_rise,
                f">= {th.min_conf_rise:.2f}",
            )  # fmt: skip
        )
    return out


def k_checks(series: list[dict[str, Any]], th: Thresholds) -> tuple[float | None, list[Check]]:
    """Spearman ρ(k, drop) and the k-series premises (BAM Fig. 2 bottom)."""
    if len(series) < th.min_k_models:
        return None, []
    ks = [r["k"] for r in series]
    drops = [r["drop"] for r in series]
    rho = spearman(ks, drops)[0]
    n_min = min(int(r["n"]) for r in series)
    at1 = [r["drop"] for r in series if math.isclose(r["k"], 1.0)]
    low = [r["drop"] for r in series if r["k"] <= 0.5 + 1e-9]
    mean_low = sum(low) / len(low) if low else math.nan
    return rho, [
        _check("bamboo-forest images per k-model (fewest)", float(n_min), n_min >= th.min_k_images,
               f">= {th.min_k_images}"),
        _check("Spearman rho(k, bamboo-forest accuracy drop) (the drop shrinks as k grows)", rho,
               rho <= th.max_k_rho, f"<= {th.max_k_rho:+.2f}"),
        _check("accuracy drop at k = 1.0", at1[0] if at1 else None, bool(at1) and at1[0] <= th.max_drop_at_1,
               f"<= {th.max_drop_at_1:.2f}"),
        _check("mean accuracy drop over k <= 0.5", mean_low, mean_low >= th.min_mean_drop_low_k,
               f">= {th.min_mean_drop_low_k:.2f}"),
    ]  # fmt: skip
