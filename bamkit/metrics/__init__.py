"""Attribution metrics as pure tensor functions (docs/metrics.md) plus statistics and a registry.

* BAM (Yang & Kim 2019): :func:`region_attribution`, :func:`mcs`, :func:`rmcs_series`, :func:`idr`,
  :func:`iir`, :func:`relative_attribution_change`, :func:`random_region_masks`.
* Faithfulness: :func:`rcap` (GAG), :func:`deletion_auc` / :func:`insertion_auc` (GAG 10-step or RISE),
  :func:`aupc` (SmoothTaylor).
* Localisation: :func:`dice`, :func:`logcosh_dice`, :func:`mae`, :func:`sqrt_mae`, :func:`rmse`,
  :func:`pointing_game`.
* Stability: :func:`kendall_tau`, :func:`cosine_similarity`, :func:`input_noise_stability`,
  :func:`masking_stability`; noise level :func:`autvc`; explanation certainty :func:`mutual_information`.
* Statistics: :mod:`bamkit.metrics.stats`. Metadata: :data:`METRICS` (``bamkit metrics``).
"""

from bamkit.metrics import catalogue  # noqa: F401  (registers every metric in METRICS)
from bamkit.metrics.autvc import AutvcResult, autvc, average_total_variation
from bamkit.metrics.bam import (
    RmcsResult,
    both_correct,
    concept_attribution,
    idr,
    idr_per_pair,
    idr_score,
    iir,
    iir_per_pair,
    iir_score,
    mcs,
    mcs_per_pair,
    mcs_score,
    random_region_masks,
    region_attribution,
    relative_attribution_change,
    relative_attribution_change_per_pair,
    rmcs_series,
)
from bamkit.metrics.faithfulness import AupcResult, CurveResult, aupc, deletion_auc, insertion_auc
from bamkit.metrics.functional import Score, simpson, trapezoid
from bamkit.metrics.information import MI_ESTIMATOR_NOTE, mutual_information
from bamkit.metrics.localisation import (
    dice,
    dice_loss,
    logcosh_dice,
    mae,
    pointing_game,
    pointing_game_round,
    rmse,
    sqrt_mae,
)
from bamkit.metrics.rcap import RcapResult, rcap, rcap_details
from bamkit.metrics.registry import METRICS, Metric
from bamkit.metrics.stability import (
    StabilityResult,
    cosine_similarity,
    input_noise_stability,
    kendall_tau,
    masking_stability,
)
from bamkit.metrics.stats import (
    bootstrap_ci,
    holm,
    paired_comparisons,
    pearson,
    ranking_agreement,
    spearman,
    trials,
)

__all__ = [
    "METRICS",
    "MI_ESTIMATOR_NOTE",
    "AupcResult",
    "AutvcResult",
    "CurveResult",
    "Metric",
    "RcapResult",
    "RmcsResult",
    "Score",
    "StabilityResult",
    "aupc",
    "autvc",
    "average_total_variation",
    "bootstrap_ci",
    "both_correct",
    "concept_attribution",
    "cosine_similarity",
    "deletion_auc",
    "dice",
    "dice_loss",
    "holm",
    "idr",
    "idr_per_pair",
    "idr_score",
    "iir",
    "iir_per_pair",
    "iir_score",
    "input_noise_stability",
    "insertion_auc",
    "kendall_tau",
    "logcosh_dice",
    "mae",
    "masking_stability",
    "mcs",
    "mcs_per_pair",
    "mcs_score",
    "mutual_information",
    "paired_comparisons",
    "pearson",
    "pointing_game",
    "pointing_game_round",
    "random_region_masks",
    "ranking_agreement",
    "rcap",
    "rcap_details",
    "region_attribution",
    "relative_attribution_change",
    "relative_attribution_change_per_pair",
    "rmcs_series",
    "rmse",
    "simpson",
    "spearman",
    "sqrt_mae",
    "trapezoid",
    "trials",
]
