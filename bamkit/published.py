"""Published reference numbers (SPEC §5) as data: the one table that verification, the metrics and the report
read. Keyed by bamkit's registered method names and metric names; BAM's percentages stay percentages.

They were measured under other conditions (ResNet-50 on the full BAM data in TF; ImageNet-S / ISIC / Places365
for GAG), so the report shows them *beside* the measured values for orientation, never as a pass/fail target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
BAM_K_ACCURACY: dict[float, tuple[float, float]] = {
    0.1: (97.0, 78.0),
    0.2: (98.0, 77.0),
    0.3: (96.0, 81.0),
    0.4: (95.0, 75.0),
    0.5: (96.0, 78.0),
    0.6: (95.0, 81.0),
    0.7: (92.0, 93.0),
    0.8: (93.0, 93.0),
    0.9: (92.0, 93.0),
    1.0: (95.0, 93.0),
}
# The accuracy drop (percentage points) when the dog is removed: the x axis of BAM Fig. 6/13 (our arithmetic).
BAM_ACC_DROP: dict[float, float] = {k: w - wo for k, (w, wo) in BAM_K_ACCURACY.items()}

# BAM Fig. 2 top (most consistent reading, SPEC §5.1; the 86.7 / 79.5 attribution is uncertain).
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

# Qualitative findings the report quotes next to the BAM metrics (SPEC §5.1).
BAM_FINDINGS: dict[str, str] = {
    "mcs": "BAM Fig. 4: TCAV highest, then GradCAM; SmoothGrad better than the remaining methods.",
    "idr": "BAM Fig. 8: GradCAM and Vanilla Gradient best; random-region baseline ≈ 50 %.",
    "iir": "BAM Fig. 10: all methods except GradCAM and Vanilla Gradient below ~20 % (t = 10 %).",
    "attribution_change": "BAM Fig. 11 (App. C): roughly the same ranking as IIR; lower is better.",
}


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
