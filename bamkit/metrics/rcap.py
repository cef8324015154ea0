"""RCAP — ReCover And Predict (Huang & Liu 2024, GAG §4.2 eq. 5), exactly as the reference code computes it
(docs/metrics.md#rcap). Inputs as for :mod:`bamkit.metrics.faithfulness`: an eval-mode model, normalised images, targets and
``to_saliency(mode="abs_minmax")`` maps in [0, 1]."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bamkit.metrics import functional as MF


@dataclass(frozen=True)
class RcapResult:
    """Per-image RCAP and its two factors per recovery step (NaN in steps the head rule dropped).

    Attributes:
        rcap: (N,) RCAP per image.
        hit_rate: (N,K) ``ΣM_{p_k} / ΣM`` ("visual noise level" term).
        prob: (N,K) softmax probability of the target on the recovered image ("localisation" term).
        thresholds: (N,K) the lower bound used at each step (after the 1.0 -> 0 rule).
    """

    rcap: torch.Tensor
    hit_rate: torch.Tensor
    prob: torch.Tensor
    thresholds: torch.Tensor


def rcap_details(
    model: nn.Module,
    images: torch.Tensor,
    saliency: torch.Tensor,
    target: torch.Tensor,
    lower_bound: float = 50,
    interval: float = 10,
    mean: Sequence[float] = MF.IMAGENET_MEAN,
    std: Sequence[float] = MF.IMAGENET_STD,
    batch_size: int = 64,
) -> RcapResult:
    """RCAP — ReCover And Predict (GAG §4.2 eq. 5), exactly as the reference code computes it (docs/metrics.md#rcap).

    1. rates ``round(arange(lower_bound/100, 1, interval/100), 2)`` ({0.5, …, 0.9} by default); for each, the
       quantile ``q_r`` = element ``int(H·W·r) − 1`` of the ascending-sorted map; steps in descending q.
    2. Head rule: if the K thresholds are all distinct, K > 1 and the first equals 1.0, that step is dropped.
    3. Step k's lower bound is ``q`` (or 0 where ``q == 1`` — a saturated map then recovers every non-zero
       pixel); the recovered image keeps every pixel recovered so far, i.e. ``M > min_{j≤k} lower_j``,
       on a black background (pixel 0), with all channels copied.
    4. ``RCAP = mean_k (Σ{M > lower_k} / ΣM) · softmax(f(I_k))_target``.

    Ties (e.g. large zero areas) make the recovered fraction differ from the nominal rate: that is the
    reference behaviour, kept on purpose. An all-zero map recovers nothing and scores 0 (its hit rate 0/0
    is defined as 0). Higher is better.

    Args:
        model: eval-mode classifier returning logits.
        images: (N,C,H,W) normalised.
        saliency: (N,H,W) in [0, 1] (``abs_minmax`` reducer).
        target: (N,) class index.
        lower_bound, interval: percent (paper: 50, 10).
        mean, std: the model's normalisation (for the black background).
        batch_size: recovered images per forward pass.
    """
    MF.check_maps(saliency, "rcap saliency", unit=True)
    MF.check_model_inputs(images, saliency, target)
    rates = MF.gag_rates(lower_bound, interval)
    q = MF.gag_quantiles(saliency, rates).flip(1)  # (N,K) descending
    k = q.shape[1]
    valid = torch.ones_like(q, dtype=torch.bool)
    if k > 1:
        distinct = (q[:, 1:] != q[:, :-1]).all(1)  # sorted, so neighbour inequality == all distinct
        valid[:, 0] = ~(distinct & (q[:, 0] == 1))
    lower = torch.where(q < 1, q, torch.zeros_like(q))
    # Only valid steps enter the cumulative recovery (a dropped head step was never applied).
    rec = torch.where(valid, lower, torch.full_like(lower, float("inf"))).cummin(1).values
    total = saliency.double().sum((1, 2))
    hit = MF.mass_above(saliency, lower) / total[:, None]
    hit = torch.where(total[:, None] > 0, hit, torch.zeros_like(hit))
    black = MF.fill_value("black", images, mean, std)
    prob = MF.masked_batches_probs(
        model,
        images,
        black,
        saliency,
        rec.to(saliency.dtype),
        target,
        pairs=valid.nonzero(),
        batch_size=batch_size,
        desc="rcap",
    )
    term = torch.where(valid, hit * prob.double(), torch.zeros_like(hit))
    score = term.sum(1) / valid.sum(1)
    nan = torch.full_like(hit, float("nan"))
    return RcapResult(
        score.float(),
        torch.where(valid, hit, nan).float(),
        prob,
        torch.where(valid, lower, nan.to(lower.dtype)),
    )


def rcap(*args, **kwargs) -> torch.Tensor:
    """Per-image RCAP (N,); the arguments of :func:`rcap_details`, which documents the protocol.
    Dataset score = mean."""
    return rcap_details(*args, **kwargs).rcap


rcap.__signature__ = inspect.signature(rcap_details).replace(return_annotation=torch.Tensor)
