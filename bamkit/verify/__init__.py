"""Verification of the ground-truth models (BAM Figure 2): :mod:`~bamkit.verify.measure` measures,
:mod:`~bamkit.verify.result` holds and (de)serialises, :mod:`~bamkit.verify.render` draws."""

from bamkit.verify.checks import Check, Thresholds
from bamkit.verify.measure import confidence_rise, true_class_prob, verify_models
from bamkit.verify.result import VerifyResult, load_result

__all__ = [
    "verify_models",
    "true_class_prob",
    "confidence_rise",
    "Thresholds",
    "Check",
    "VerifyResult",
    "load_result",
]
