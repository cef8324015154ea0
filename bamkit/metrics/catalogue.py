"""The registered metrics (``bamkit metrics``): BAM's pair metrics and their derived rows, the seed papers'
per-image faithfulness and localisation metrics, and the stability protocols. Each entry holds the pure
function that computes it; its settings are that function's parameters (:mod:`bamkit.metrics.registry`
explains the fields)."""

from __future__ import annotations

from typing import Any

import torch

from bamkit.metrics import autvc as _autvc
from bamkit.metrics import bam, faithfulness, information, localisation, rcap, stability, stats
from bamkit.metrics.functional import gag_rates
from bamkit.metrics.registry import ImageInputs, Metric, register

_BAM = "Yang & Kim 2019 (BAM)"
_GAG = "Huang & Liu 2024 (Guided AbsoluteGrad)"
_ST = "Goh et al. 2020 (SmoothTaylor)"
_PARK = "Park, SmoothGrad has better Kendall's rank; Wang & Kong 2022"
_SM = "Luo et al. 2025 (Sampling matters)"

_PAIR_BAM = frozenset({"saliency_bam", "masks", "pair", "correct"})
_MODEL = frozenset({"model", "images", "target", "saliency"})
_MASK = frozenset({"saliency", "masks"})


# --------------------------------------------------------------------------------------------- BAM
class _PairMetric(Metric):
    scenario, requires, saliency, per, paper = "mcs", _PAIR_BAM, "bam", "pair", _BAM


@register
class MCS(_PairMetric):
    """Model Contrast Score: G_c(f_1) − G_c(f_2) on the same inputs (BAM §4.2)."""

    name, title, higher_is_better = "mcs", "Model contrast score (MCS, BAM §4.2)", True
    function, per_pair = staticmethod(bam.mcs_score), staticmethod(bam.mcs_per_pair)
    baseline = "mcs_random"
    note = "G_c(f_o) − G_c(f_s) on the same X_{o,s} inputs; random-region baseline alongside"


@register
class MCSRandom(_PairMetric):
    """MCS with the object mask replaced by a random region: the baseline of BAM Fig. 4."""

    name, title, higher_is_better, derived_from = "mcs_random", "MCS, random region (baseline)", None, "mcs"
    function, per_pair = staticmethod(bam.mcs_score), staticmethod(bam.mcs_per_pair)
    column = "g_c_random"


@register
class RelativeMCS(_PairMetric):
    """Relative MCS over the commonality models and its Pearson ρ with the accuracy drop (BAM Fig. 6/13)."""

    name, title, scenario, higher_is_better = "rmcs", "Relative MCS (BAM Fig. 6/13)", "rmcs", True
    per = "dataset"
    function, per_pair = staticmethod(bam.rmcs_series), staticmethod(bam.mcs_per_pair)
    note = "MCS of f^k vs f^1.0 per k and Pearson ρ with the accuracy drop (9 and 10 points)"


@register
class RMCSRho(_PairMetric):
    """Pearson ρ of the relative-MCS series with the accuracy drop, 10 points (k = 1.0 appended with MCS 0)."""

    name, title, scenario, higher_is_better = (
        "rmcs_rho",
        "Relative MCS: Pearson ρ with the drop",
        "rmcs",
        True,
    )
    per, function, derived_from = "dataset", staticmethod(bam.rmcs_series), "rmcs"


@register
class RMCSRho9(_PairMetric):
    """Pearson ρ of the relative-MCS series with the accuracy drop over k = 0.1 … 0.9."""

    name, title, scenario, higher_is_better = "rmcs_rho9", "Relative MCS: ρ over 9 points", "rmcs", True
    per, function, derived_from = "dataset", staticmethod(bam.rmcs_series), "rmcs"


@register
class IDR(_PairMetric):
    """Input Dependence Rate: share of pairs with less attribution on the unimportant object (BAM §4.3)."""

    name, title, scenario, higher_is_better = "idr", "Input dependence rate (IDR, BAM §4.3)", "idr", True
    function, per_pair = staticmethod(bam.idr_score), staticmethod(bam.idr_per_pair)
    baseline, chance = "idr_random", 0.5
    note = "strict <; random-region baseline ≈ 0.5"


@register
class IDRRandom(_PairMetric):
    """IDR with a random region instead of the object's: the ≈ 50 % baseline of BAM Fig. 8."""

    name, title, scenario, higher_is_better = "idr_random", "IDR, random region (baseline)", "idr", None
    function, per_pair, derived_from = staticmethod(bam.idr_score), staticmethod(bam.idr_per_pair), "idr"
    column = "g_c_random"


@register
class IIR(_PairMetric):
    """Input Independence Rate: share of pairs whose g_c moves < t under the insignificant δ (BAM §4.4)."""

    name, scenario, higher_is_better = "iir", "iir", True
    title = "Input independence rate (IIR, BAM §4.4, t = {t:.0%})"
    function, per_pair = staticmethod(bam.iir_score), staticmethod(bam.iir_per_pair)
    params, check = ("t",), staticmethod(bam.check_threshold)


@register
class AttributionChange(_PairMetric):
    """Mean relative attribution change under δ (BAM App. C)."""

    name, scenario, higher_is_better = "attribution_change", "iir", False
    title = "Average relative attribution change (BAM App. C)"
    function = staticmethod(bam.relative_attribution_change)
    per_pair = staticmethod(bam.relative_attribution_change_per_pair)
    note = "App. C; pairs with g_c(x) = 0 excluded and counted"


# --------------------------------------------------------------------------------------------- faithfulness
class _ModelMetric(Metric):
    """Image metrics that run perturbed images through the model (GAG / SmoothTaylor protocols)."""

    scenario, requires, saliency = "faithfulness", _MODEL, "abs_minmax"

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        out = cls.function(inp.model, inp.x, inp.maps[cls.saliency], inp.target, batch_size=inp.batch_size,
                           **inp.norm, **params)  # fmt: skip
        return getattr(out, cls.result, out) if cls.result else out

    result = ""  # the field of the function's result that holds the per-image values ("" = the result)


@register
class RCAP(_ModelMetric):
    """ReCover And Predict (GAG §4.2 eq. 5)."""

    name, higher_is_better = "rcap", True
    title = "RCAP (GAG §4.2; recovery from the top {lower_bound:g} % in steps of {interval:g} %)"
    function, paper = staticmethod(rcap.rcap_details), _GAG
    params, check, result = ("lower_bound", "interval"), staticmethod(gag_rates), "rcap"


@register
class DAUC(_ModelMetric):
    """Deletion AUC (GAG 10-step protocol or RISE)."""

    name, title, higher_is_better = "dauc", "Deletion AUC ({protocol} protocol)", False
    function, paper = staticmethod(faithfulness.deletion_auc), _GAG
    params, result = ("protocol", "pixels_per_step", "fill"), "auc"
    note = "max 0.9 under gag10; protocol='rise' for Petsiuk et al. 2018"


@register
class IAUC(_ModelMetric):
    """Insertion AUC (GAG 10-step protocol or RISE)."""

    name, title, higher_is_better = "iauc", "Insertion AUC ({protocol} protocol)", True
    function, paper = staticmethod(faithfulness.insertion_auc), _GAG
    params, result = ("protocol", "pixels_per_step", "blur_kernel", "blur_sigma"), "auc"
    note = DAUC.note


@register
class AUPC(_ModelMetric):
    """Area under SmoothTaylor's perturbation curve (sensitivity)."""

    name, title, higher_is_better, saliency = "aupc", "AUPC (SmoothTaylor)", False, "signed"
    requires = frozenset({"model", "images", "target", "heatmap"})
    function, paper = staticmethod(faithfulness.aupc), _ST
    params, result = ("kernel_size", "n_regions", "n_perturbations", "even"), "aupc"

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        # one seed per image (its own draws, independent of the batch it falls in); one call shares the
        # forward passes of all images (``aupc(x, seeds=s)[i] == aupc(x[i:i+1], seed=s[i])``)
        seeds = [int(s) for s in inp.seeds] if len(inp.seeds) else list(range(inp.x.shape[0]))
        return super().image_values(inp, seeds=seeds, **params)


@register
class AUTVC(Metric):
    """Area under the multi-scale average total variation curve (SmoothTaylor's noise level)."""

    name, title, scenario, higher_is_better = "autvc", "AUTVC (SmoothTaylor)", "faithfulness", False
    requires, saliency = frozenset({"heatmap"}), "signed"
    function, paper = staticmethod(_autvc.autvc), _ST
    params = ("downscale", "min_size", "norm", "even")
    note = "even-N Simpson rule selectable (SciPy 1.11 changed it)"

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        return cls.function(inp.maps[cls.saliency], **params).autvc


@register
class MutualInformation(Metric):
    """Explanation certainty I(x; z) in nats (bamkit estimator)."""

    name, title, scenario, higher_is_better = "mutual_information", "Mutual information", "faithfulness", True
    saliency, requires = "abs_minmax", frozenset({"pixels", "saliency"})
    function, paper = staticmethod(information.mutual_information), _SM
    params = ("bins", "miller_madow", "estimator", "k", "max_samples")
    note = "bamkit estimator (the paper's estimator is unspecified)"

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        return cls.function(inp.pixels(), inp.maps[cls.saliency], **params)


# --------------------------------------------------------------------------------------------- localisation
class _MaskMetric(Metric):
    """Image metrics comparing the map with the object mask (GAG's ImageNet-S protocol)."""

    scenario, requires, saliency, paper = "faithfulness", _MASK, "abs_minmax", _GAG

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        return cls.function(inp.maps[cls.saliency], inp.masks, **params)


@register
class LogCoshDice(_MaskMetric):
    """Log-cosh Dice loss against the object mask (GAG's L_lcdce)."""

    name, title, higher_is_better = "logcosh_dice", "Log-cosh Dice loss (GAG)", False
    function, params = staticmethod(localisation.logcosh_dice), ("smooth",)


@register
class Dice(_MaskMetric):
    """Soft Dice coefficient against the object mask."""

    name, title, higher_is_better = "dice", "Soft Dice", True
    function, params = staticmethod(localisation.dice), ("smooth",)


@register
class MAE(_MaskMetric):
    """Mean absolute error against the object mask."""

    name, title, higher_is_better = "mae", "MAE", False
    function = staticmethod(localisation.mae)


@register
class SqrtMAE(_MaskMetric):
    """Square root of the MAE (GAG's reported 'MAE')."""

    name, title, higher_is_better = "sqrt_mae", "sqrt(MAE) (GAG's 'MAE')", False
    function, note = staticmethod(localisation.sqrt_mae), "what GAG reports as 'MAE'"


@register
class RMSE(_MaskMetric):
    """Root mean squared error against the object mask (GAG code's 'MSE')."""

    name, title, higher_is_better = "rmse", "RMSE", False
    function = staticmethod(localisation.rmse)


@register
class PointingGame(_MaskMetric):
    """Centroid of the top-30 % pixels inside the object mask."""

    name, title, higher_is_better = "pointing_game", "Pointing game (GAG)", True
    function, params = staticmethod(localisation.pointing_game), ("quantile",)
    note = "centroid truncated with int() as GAG's reference; NaN for empty masks"


@register
class PointingGameRound(_MaskMetric):
    """Pointing game with the centroid rounded to the nearest pixel (not GAG's; kept under its own name)."""

    name, title, higher_is_better = "pointing_game_round", "Pointing game, rounded centroid", True
    function, params = staticmethod(localisation.pointing_game_round), ("quantile",)
    note = "bamkit variant: rounded centroid; NaN for empty masks"


# --------------------------------------------------------------------------------------------- stability
class _StabilityMetric(Metric):
    """The two protocols' metrics; their settings (levels, τ variant, subsample, fill) are the stability
    scenario's, which runs both protocols for every method at once."""

    scenario, saliency, paper = "stability", "raw_flat", _PARK
    requires = frozenset({"explain", "images"})


@register
class KendallNoise(_StabilityMetric):
    """Kendall τ / cosine of attributions under uniform input noise (protocol 1)."""

    # Under input noise a higher τ at a fixed ε means a more robust method; the evaluate stage ranks the
    # per-image mean over the ε levels.
    name, title, higher_is_better, protocol = "kendall_noise", "Kendall τ under input noise", True, "noise"
    function = staticmethod(stability.input_noise_stability)
    note = "τ per ε (mean over the levels is ranked); cosine alongside"


@register
class CosineNoise(_StabilityMetric):
    """Cosine similarity of attributions under uniform input noise (protocol 1)."""

    name, title, higher_is_better, protocol = "cosine_noise", "Cosine under input noise", True, "noise"
    function, note = staticmethod(stability.input_noise_stability), "computed together with kendall_noise"


@register
class KendallMasking(_StabilityMetric):
    """Kendall τ / cosine under removal of the most-attributed pixels (Park's protocol 2)."""

    name, title, higher_is_better = "kendall_masking", "Kendall τ under masking", None
    protocol, function = "masking", staticmethod(stability.masking_stability)
    note = "τ and cosine per removed ratio; want a monotone decrease and a strong τ–cosine correlation"


@register
class CosineMasking(_StabilityMetric):
    """Cosine similarity of attributions under removal of the most-attributed pixels (protocol 2)."""

    name, title, higher_is_better = "cosine_masking", "Cosine under masking", None
    protocol, function = "masking", staticmethod(stability.masking_stability)
    note = "computed together with kendall_masking; read from its curve, not ranked"


def _stability_rows() -> None:
    """The derived stability rows: Pearson r(τ, cosine) and Spearman ρ(τ, level) per protocol (not ranked)."""
    for proto in ("noise", "masking"):
        for stem, fn, text in (
            ("tau_cosine_r", stats.pearson, "Pearson r(τ, cosine)"),
            ("tau_level_rho", stats.spearman, "Spearman ρ(τ, level)"),
        ):
            attrs = {
                "name": f"{stem}_{proto}",
                "title": f"{text}, {proto}",
                "higher_is_better": None,
                "protocol": proto,
                "per": "dataset",
                "function": staticmethod(fn),
                "derived_from": f"kendall_{proto}",
                "__doc__": f"{text} over every (image, level) point of protocol '{proto}'.",
            }
            register(type(f"_{stem}_{proto}", (_StabilityMetric,), attrs))


_stability_rows()
