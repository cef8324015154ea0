"""Metric metadata (Quantus-style class attributes) and the ``METRICS`` registry behind ``bamkit metrics``.

Each entry says what the metric needs, which ``to_saliency`` reducer feeds it, which way is better and where
it comes from; the maths stays in the pure functions it points to (mmengine's ``process``/``compute`` split:
the evaluate stage gathers the inputs, the function computes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from bamkit.registry import Registry


class Metric:
    """Metadata of one metric. Subclasses set the class attributes and are registered by name.

    Attributes:
        name: registry name (also the YAML ``name:`` in an evaluation suite).
        higher_is_better: True / False, or None when the output is not a single score.
        requires: the inputs it needs, from {"saliency_bam", "saliency", "heatmap", "attributions",
            "masks", "model", "images", "pixels", "target", "pair", "correct", "explain"}.
        reducer: the ``to_saliency`` mode of its maps ("bam", "abs_minmax", "signed", "raw_flat") or None.
        per: "image" (one value per image), "pair" (per image pair) or "dataset".
        function: dotted path of the pure function in ``bamkit.metrics``.
        defaults: the paper's parameter defaults.
        paper: the source.
        note: caveats shown in listings.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool | None]
    requires: ClassVar[frozenset[str]]
    reducer: ClassVar[str | None]
    per: ClassVar[str] = "image"
    function: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    paper: ClassVar[str] = ""
    note: ClassVar[str] = ""

    @classmethod
    def resolve(cls) -> Callable[..., Any]:
        """The pure function that computes this metric."""
        import importlib

        mod, _, attr = cls.function.rpartition(".")
        return getattr(importlib.import_module(mod), attr)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "higher_is_better": cls.higher_is_better,
            "requires": sorted(cls.requires),
            "reducer": cls.reducer,
            "per": cls.per,
            "function": cls.function,
            "defaults": dict(cls.defaults),
            "paper": cls.paper,
            "note": cls.note,
        }


METRICS: Registry[type[Metric]] = Registry("metric", "bamkit metrics")

_BAM = "Yang & Kim 2019 (BAM)"
_GAG = "Huang & Liu 2024 (Guided AbsoluteGrad)"
_ST = "Goh et al. 2020 (SmoothTaylor)"
_PARK = "Park, SmoothGrad has better Kendall's rank; Wang & Kong 2022"
_SM = "Luo et al. 2025 (Sampling matters)"

_PAIR_BAM = frozenset({"saliency_bam", "masks", "pair", "correct"})
_MODEL = frozenset({"model", "images", "target", "saliency"})
_MASK = frozenset({"saliency", "masks"})


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a :class:`Metric` subclass to :data:`METRICS` under its ``name``."""
    METRICS.add(cls.name, cls)
    return cls


# --------------------------------------------------------------------------------------------- BAM
@register
class MCS(Metric):
    """Model Contrast Score: G_c(f_1) − G_c(f_2) on the same inputs (BAM §4.2)."""

    name, higher_is_better, requires, reducer = "mcs", True, _PAIR_BAM, "bam"
    per, function, paper = "pair", "bamkit.metrics.bam.mcs_score", _BAM
    note = "G_c(f_o) − G_c(f_s) on the same X_{o,s} inputs; random-region baseline alongside"


@register
class RelativeMCS(Metric):
    """Relative MCS over the commonality models and its Pearson ρ with the accuracy drop (BAM Fig. 6/13)."""

    name, higher_is_better, requires, reducer = "rmcs", True, _PAIR_BAM, "bam"
    per, function, paper = "dataset", "bamkit.metrics.bam.rmcs_series", _BAM
    note = "MCS of f^k vs f^1.0 per k and Pearson ρ with the accuracy drop (9 and 10 points)"


@register
class IDR(Metric):
    """Input Dependence Rate: share of pairs with less attribution on the unimportant object (BAM §4.3)."""

    name, higher_is_better, requires, reducer = "idr", True, _PAIR_BAM, "bam"
    per, function, paper = "pair", "bamkit.metrics.bam.idr_score", _BAM
    note = "strict <; random-region baseline ≈ 0.5"


@register
class IIR(Metric):
    """Input Independence Rate: share of pairs whose g_c moves < t under the insignificant δ (BAM §4.4)."""

    name, higher_is_better, requires, reducer = "iir", True, _PAIR_BAM, "bam"
    per, function, paper = "pair", "bamkit.metrics.bam.iir_score", _BAM
    defaults = {"t": 0.1}


@register
class AttributionChange(Metric):
    """Mean relative attribution change under δ (BAM App. C)."""

    name, higher_is_better, requires, reducer = "attribution_change", False, _PAIR_BAM, "bam"
    per, function, paper = "pair", "bamkit.metrics.bam.relative_attribution_change", _BAM
    note = "App. C; pairs with g_c(x) = 0 excluded and counted"


# --------------------------------------------------------------------------------------------- faithfulness
@register
class RCAP(Metric):
    """ReCover And Predict (GAG §4.2 eq. 5)."""

    name, higher_is_better, requires, reducer = "rcap", True, _MODEL, "abs_minmax"
    function, paper = "bamkit.metrics.faithfulness.rcap", _GAG
    defaults = {"lower_bound": 50, "interval": 10}


@register
class DAUC(Metric):
    """Deletion AUC (GAG 10-step protocol or RISE)."""

    name, higher_is_better, requires, reducer = "dauc", False, _MODEL, "abs_minmax"
    function, paper = "bamkit.metrics.faithfulness.deletion_auc", _GAG
    defaults = {"protocol": "gag10"}
    note = "max 0.9 under gag10; protocol='rise' for Petsiuk et al. 2018"


@register
class IAUC(Metric):
    """Insertion AUC (GAG 10-step protocol or RISE)."""

    name, higher_is_better, requires, reducer = "iauc", True, _MODEL, "abs_minmax"
    function, paper = "bamkit.metrics.faithfulness.insertion_auc", _GAG
    defaults = {"protocol": "gag10"}
    note = "max 0.9 under gag10; protocol='rise' for Petsiuk et al. 2018"


@register
class AUPC(Metric):
    """Area under SmoothTaylor's perturbation curve (sensitivity)."""

    name, higher_is_better, reducer = "aupc", False, "signed"
    requires = frozenset({"model", "images", "target", "heatmap"})
    function, paper = "bamkit.metrics.faithfulness.aupc", _ST
    defaults = {"kernel_size": 15, "n_regions": 30, "n_perturbations": 50}


@register
class AUTVC(Metric):
    """Area under the multi-scale average total variation curve (SmoothTaylor's noise level)."""

    name, higher_is_better, requires, reducer = "autvc", False, frozenset({"heatmap"}), "signed"
    function, paper = "bamkit.metrics.stability.autvc", _ST
    defaults = {"downscale": 1.5, "min_size": 30, "norm": 1, "even": "avg"}
    note = "even-N Simpson rule selectable (SciPy 1.11 changed it)"


# --------------------------------------------------------------------------------------------- localisation
@register
class LogCoshDice(Metric):
    """Log-cosh Dice loss against the object mask (GAG's L_lcdce)."""

    name, higher_is_better, requires, reducer = "logcosh_dice", False, _MASK, "abs_minmax"
    function, paper, defaults = "bamkit.metrics.localisation.logcosh_dice", _GAG, {"smooth": 1.0}


@register
class Dice(Metric):
    """Soft Dice coefficient against the object mask."""

    name, higher_is_better, requires, reducer = "dice", True, _MASK, "abs_minmax"
    function, paper, defaults = "bamkit.metrics.localisation.dice", _GAG, {"smooth": 1.0}


@register
class MAE(Metric):
    """Mean absolute error against the object mask."""

    name, higher_is_better, requires, reducer = "mae", False, _MASK, "abs_minmax"
    function, paper = "bamkit.metrics.localisation.mae", _GAG


@register
class SqrtMAE(Metric):
    """Square root of the MAE (GAG's reported 'MAE')."""

    name, higher_is_better, requires, reducer = "sqrt_mae", False, _MASK, "abs_minmax"
    function, paper = "bamkit.metrics.localisation.sqrt_mae", _GAG
    note = "what GAG reports as 'MAE'"


@register
class RMSE(Metric):
    """Root mean squared error against the object mask (GAG code's 'MSE')."""

    name, higher_is_better, requires, reducer = "rmse", False, _MASK, "abs_minmax"
    function, paper = "bamkit.metrics.localisation.rmse", _GAG


@register
class PointingGame(Metric):
    """Centroid of the top-30 % pixels inside the object mask."""

    name, higher_is_better, requires, reducer = "pointing_game", True, _MASK, "abs_minmax"
    function, paper, defaults = "bamkit.metrics.localisation.pointing_game", _GAG, {"quantile": 0.7}
    note = "NaN for empty masks"


# --------------------------------------------------------------------------------------------- stability
@register
class KendallNoise(Metric):
    """Kendall τ / cosine of attributions under uniform input noise (protocol 1)."""

    # SPEC §3.12: under input noise a higher τ at a fixed ε means a more robust method; the evaluate stage
    # ranks the per-image mean over the ε levels.
    name, higher_is_better, reducer = "kendall_noise", True, "raw_flat"
    requires = frozenset({"explain", "images"})
    function, paper, defaults = "bamkit.metrics.stability.input_noise_stability", _PARK, {"variant": "b"}
    note = "τ per ε (mean over the levels is ranked); cosine alongside"


@register
class CosineNoise(Metric):
    """Cosine similarity of attributions under uniform input noise (protocol 1)."""

    name, higher_is_better, reducer = "cosine_noise", True, "raw_flat"
    requires = frozenset({"explain", "images"})
    function, paper, defaults = "bamkit.metrics.stability.input_noise_stability", _PARK, {}
    note = "computed together with kendall_noise"


@register
class KendallMasking(Metric):
    """Kendall τ / cosine under removal of the most-attributed pixels (Park's protocol 2)."""

    name, higher_is_better, reducer = "kendall_masking", None, "raw_flat"
    requires = frozenset({"explain", "images"})
    function, paper, defaults = "bamkit.metrics.stability.masking_stability", _PARK, {"variant": "b"}
    note = "τ and cosine per removed ratio; want a monotone decrease and a strong τ–cosine correlation"


@register
class CosineMasking(Metric):
    """Cosine similarity of attributions under removal of the most-attributed pixels (protocol 2)."""

    name, higher_is_better, reducer = "cosine_masking", None, "raw_flat"
    requires = frozenset({"explain", "images"})
    function, paper, defaults = "bamkit.metrics.stability.masking_stability", _PARK, {}
    note = "computed together with kendall_masking; read from its curve, not ranked"


@register
class MutualInformation(Metric):
    """Explanation certainty I(x; z) in nats (bamkit estimator)."""

    name, higher_is_better, reducer = "mutual_information", True, "abs_minmax"
    requires = frozenset({"pixels", "saliency"})
    function, paper = "bamkit.metrics.stability.mutual_information", _SM
    defaults = {"bins": 32, "estimator": "histogram"}
    note = "bamkit estimator (the paper's estimator is unspecified)"


def names() -> list[str]:
    """Registered metric names."""
    return METRICS.names()


def get(name: str) -> type[Metric]:
    """The metric class for ``name`` (close-name suggestions when unknown)."""
    return METRICS.get(name)
