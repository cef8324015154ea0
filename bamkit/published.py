"""BAM's constants and the published reference numbers, as data: the one module that the dataset recipe,
verification, the metrics, the findings check and the report read (docs/reproduction.md quotes them).

* The commonality grid k = 0.1 … 1.0 (BAM §3.2) and the names built from it (``commonality/k0.1``, ``f_k0.1``).
* BAM Fig. 2 (top and bottom), the accuracy drop derived from it, and the one rule that decides whether a run's
  relative MCS correlates with its own verified drop or falls back to the paper's (:func:`accuracy_drop`).
* BAM Fig. 13's Pearson ρ, GAG Table 2 (ImageNet-S columns), and the paper's qualitative findings
  (:data:`FINDINGS`) as tests a leaderboard can be checked against.

Published numbers were measured under other conditions (ResNet-50 on the full BAM data in TF; ImageNet-S / ISIC
/ Places365 for GAG), so the report shows them *beside* the measured values for orientation, never as a
pass/fail target. Keyed by bamkit's registered method and metric names; BAM's percentages stay percentages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# BAM §3.2: the commonality sets X^k put the dog into the first round(10·k) scene classes, k = 0.1 … 1.0.
K_GRID: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(1, 11))
REFERENCE_K = 1.0  # relative MCS contrasts every f_k with f_1.0 (BAM §4.2)


def k_label(k: float) -> str:
    """``0.1`` -> ``"0.1"``: how a k is written in set names, model names and tables."""
    return f"{k:.1f}" if round(k, 1) == k else f"{k:g}"


def k_model(k: float) -> str:
    """The model trained on X^k: ``0.1`` -> ``"f_k0.1"``."""
    return f"f_k{k_label(k)}"


def k_of_model(role: str) -> float:
    """``"f_k0.1"`` -> ``0.1`` (the inverse of :func:`k_model`)."""
    return round(float(role.removeprefix("f_k")), 1)


@dataclass(frozen=True)
class Published:
    value: float
    source: str


BAM_FIG13 = "BAM Fig. 13 (ResNet-50, TF)"

# BAM's eight saliency methods (Figs. 4, 6, 8, 10, 11), by registered name: VG, GxI, SG, IG, IG-SG, GB, GC, GGC.
BAM_SALIENCY = (
    "vanilla_gradient",
    "gradient_x_input",
    "smoothgrad_sq",
    "integrated_gradients",
    "ig_smoothgrad",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
)
GAG_T2 = "GAG Table 2 (ImageNet-S, ResNet-50)"

# BAM Fig. 13 bottom: Pearson ρ between each method's relative-MCS series and the accuracy drop.
BAM_RMCS_RHO: dict[str, float] = {
    "gradcam": 0.92,
    "vanilla_gradient": 0.77,
    "smoothgrad_sq": 0.69,
    "integrated_gradients": 0.87,
    "ig_smoothgrad": 0.88,
    "gradient_x_input": 0.76,
    "guided_backprop": 0.80,
    "guided_gradcam": 0.86,
    "tcav": 0.95,
}

# BAM Fig. 2 bottom: bamboo-forest test accuracy (%) of the scene models trained on X^k, with / without the dog.
BAM_K_ACCURACY: dict[float, tuple[float, float]] = dict(
    zip(K_GRID, ((97.0, 78.0), (98.0, 77.0), (96.0, 81.0), (95.0, 75.0), (96.0, 78.0), (95.0, 81.0),
                 (92.0, 93.0), (93.0, 93.0), (92.0, 93.0), (95.0, 93.0)))
)  # fmt: skip
# The accuracy drop (percentage points) when the dog is removed: the x axis of BAM Fig. 6/13 (our arithmetic).
BAM_ACC_DROP: dict[float, float] = {k: w - wo for k, (w, wo) in BAM_K_ACCURACY.items()}
PAPER_DROP_SOURCE = "paper (BAM Fig. 2 bottom)"
VERIFIED_DROP_SOURCE = "verification"


def accuracy_drop(measured: Mapping[float, float] | None) -> tuple[dict[float, float], str]:
    """The accuracy drop relative MCS is correlated with, and where it comes from: the run's own verified drop
    (``bamkit verify``; k -> points) when it holds any point, else the paper's (:data:`BAM_ACC_DROP`). The one
    place this fallback is decided."""
    if measured:
        return dict(measured), VERIFIED_DROP_SOURCE
    return dict(BAM_ACC_DROP), PAPER_DROP_SOURCE


# BAM Fig. 2 top (the most consistent reading of the paper's garbled table; which model the 86.7 / 79.5
# confidence shares belong to is uncertain, docs/reproduction.md).
BAM_FIG2_TOP: dict[str, dict[str, float]] = {
    "f_o": {"acc_full": 91.1, "acc_cf_removed": 93.1, "conf_rise": 86.7, "acc_only_cf": 9.7},
    "f_s": {"acc_full": 94.0, "acc_cf_removed": 95.5, "conf_rise": 79.5, "acc_only_cf": 9.8},
}

# GAG Table 2, ImageNet-S columns: metric -> method -> value. "^R" rows are the reversed (misplaced) maps.
_GAG_COLS = ("logcosh_dice", "sqrt_mae", "rcap", "dauc", "iauc")
_GAG_ROWS: dict[str, tuple[float, ...]] = {
    "gradcam": (0.134827, 0.533307, 0.405913, 0.149310, 0.690723),
    "guided_absolutegrad": (0.267944, 0.474767, 0.437721, 0.104200, 0.681461),
    "vargrad": (0.343050, 0.487181, 0.380860, 0.103676, 0.681283),
    "smoothgrad": (0.330746, 0.499001, 0.106728, 0.077568, 0.604721),
    "integrated_gradients": (0.338247, 0.506464, 0.044868, 0.085472, 0.512035),
    "guided_backprop": (0.382623, 0.489085, 0.172062, 0.074304, 0.650321),
    "guided_ig": (0.355837, 0.490389, 0.089705, 0.069034, 0.598204),
    "blur_ig": (0.373369, 0.495475, 0.085276, 0.081145, 0.556277),
    "vanilla_gradient": (0.345874, 0.503979, 0.033987, 0.129176, 0.451061),
    "reversed:smoothgrad": (0.349800, 0.506888, 0.015605, 0.098985, 0.378892),
    "reversed:integrated_gradients": (0.352210, 0.512288, 0.006085, 0.114989, 0.305586),
    "reversed:guided_backprop": (0.397432, 0.493827, 0.019291, 0.143109, 0.338570),
    "reversed:guided_ig": (0.367862, 0.494889, 0.010105, 0.096910, 0.351039),
    "reversed:blur_ig": (0.383503, 0.499044, 0.007828, 0.111227, 0.315826),
}
GAG_IMAGENET_S: dict[str, dict[str, float]] = {
    col: {m: v[i] for m, v in _GAG_ROWS.items()} for i, col in enumerate(_GAG_COLS)
}


# --------------------------------------------------------------------------------------------- findings
@dataclass(frozen=True)
class Finding:
    """One of the paper's qualitative findings, as data: what the paper claims and how a leaderboard is tested
    against it (:mod:`bamkit.evaluate.findings` evaluates it; the report quotes ``text`` beside the metric).

    Rankings are among :data:`BAM_SALIENCY` (by registered name) in the metric's own direction.

    Attributes:
        id: the finding's number (1-8).
        text: the claim as the report prints it, with the figure it comes from.
        metric: the leaderboard metric (or derived row) it reads.
        test: ``"top"`` (every method of ``methods`` ranks ``<= k``), ``"lower_half"`` (the one method ranks
            below the middle), ``"above"`` (the method's value ``> bounds[0]``), ``"count_above"`` (at least
            ``k`` methods' values ``> bounds[0]``) or ``"mean_within"`` (the mean over methods in ``bounds``).
        methods: registered method names the test is about.
        k: the rank bound of ``"top"``, the count of ``"count_above"``.
        bounds: the value bounds of ``"above"``, ``"count_above"`` and ``"mean_within"``.
        min_methods: fewer ranked saliency methods than this: not measured (a ranking of two says nothing).
    """

    id: int
    text: str
    metric: str
    test: str
    methods: tuple[str, ...] = ()
    k: int = 0
    bounds: tuple[float, float] = (-math.inf, math.inf)
    min_methods: int = 1


GC, VG, GB = "gradcam", "vanilla_gradient", "guided_backprop"

# BAM §5 (Figs. 4, 6, 8, 10, 11, 13), as tests on a leaderboard of its eight saliency methods.
FINDINGS: tuple[Finding, ...] = (
    Finding(1, "MCS: GradCAM is among the top two saliency methods (BAM Fig. 4)", "mcs", "top", (GC,), k=2,
            min_methods=4),
    Finding(2, "MCS: Guided Backprop is in the lower half (BAM Fig. 4)", "mcs", "lower_half", (GB,),
            min_methods=4),
    Finding(3, "Relative MCS: Pearson ρ with the accuracy drop > 0.5 for GradCAM (BAM Fig. 6/13)", "rmcs_rho",
            "above", (GC,), bounds=(0.5, math.inf)),
    Finding(4, "Relative MCS: ρ > 0 for at least 6 of the 8 saliency methods (BAM Fig. 13)", "rmcs_rho",
            "count_above", k=6, bounds=(0.0, math.inf), min_methods=6),
    Finding(5, "IDR: GradCAM and Vanilla Gradient are in the top three (BAM Fig. 8)", "idr", "top", (GC, VG),
            k=3, min_methods=4),
    Finding(6, "IDR: the random-region baseline is within 0.4-0.6 (BAM Fig. 8)", "idr_random", "mean_within",
            bounds=(0.4, 0.6)),
    Finding(7, "IIR: GradCAM and Vanilla Gradient are the top two (BAM Fig. 10)", "iir", "top", (GC, VG), k=2,
            min_methods=4),
    Finding(8, "App. C: GradCAM and Vanilla Gradient have the two lowest relative attribution changes "
            "(BAM Fig. 11)", "attribution_change", "top", (GC, VG), k=2, min_methods=4),
)  # fmt: skip


def findings_about(metric: str) -> tuple[Finding, ...]:
    """The findings that test ``metric`` or its random-region baseline (report captions quote them)."""
    return tuple(f for f in FINDINGS if f.metric in (metric, f"{metric}_random"))


def method_key(name: str, params: dict[str, Any]) -> str:
    """The key of a suite method in the tables above (``reversed:<inner>`` for reversed maps)."""
    if name == "reversed":
        return f"reversed:{params.get('method', 'smoothgrad')}"
    return name


def lookup(metric: str, name: str, params: dict[str, Any]) -> Published | None:
    """The published value of ``metric`` for the method ``name`` with ``params``, if any."""
    key = method_key(name, params)
    if metric in ("rmcs_rho", "rmcs_rho9") and key in BAM_RMCS_RHO:
        return Published(BAM_RMCS_RHO[key], BAM_FIG13)
    if metric in GAG_IMAGENET_S and key in GAG_IMAGENET_S[metric]:
        return Published(GAG_IMAGENET_S[metric][key], GAG_T2)
    return None
