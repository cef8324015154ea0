"""Faithfulness metrics that call the model: deletion / insertion AUC (GAG's 10-step protocol and the classic RISE
protocol) and SmoothTaylor's perturbation curve / AUPC (Goh et al. 2020); RCAP is :mod:`bamkit.metrics.rcap`.

Inputs: an eval-mode ``model`` returning logits, normalised ``images`` (N,C,H,W), ``target`` (N,) and 2-D
maps (N,H,W) at input resolution. RCAP/DAUC/IAUC expect ``to_saliency(mode="abs_minmax")`` maps in [0, 1]
(docs/conventions.md#saliency-modes: never p99-clipped ones); AUPC takes the signed channel sum. Every perturbed image of every input
goes through the model in batches of ``batch_size`` under ``no_grad`` (built on the fly, bounded memory).
``mean``/``std`` describe the model's normalisation, used to build black fills and uniform patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bamkit.errors import ConfigError
from bamkit.metrics.functional import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_maps,
    check_model_inputs,
    fill_value,
    gag_quantiles,
    gaussian_blur,
    masked_batches_probs,
    model_scores,
    simpson,
    trapezoid,
)
from bamkit.progress import bar


@dataclass(frozen=True)
class CurveResult:
    """A deletion or insertion curve per image and its area.

    Attributes:
        auc: (N,) area under each image's curve. The dataset score (GAG: AUC of the mean curve) equals the
            mean of these, since the trapezoid rule is linear.
        curve: (N,K) softmax probability of the target at each step.
        x: (K,) the x axis used for the area.
    """

    auc: torch.Tensor
    curve: torch.Tensor
    x: torch.Tensor


GAG_STEPS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def _steps(saliency: torch.Tensor, protocol: str, pixels_per_step: int | None):
    """(key, thresholds (N,K), x (K,)) such that step k perturbs the pixels with key > threshold."""
    n, h, w = saliency.shape
    if protocol == "gag10":
        # step k keeps q_r for r = 1.0, 0.9, ... 0.1: pixels with M > q_r are ~0 %, 10 %, ... 90 %.
        q = gag_quantiles(saliency, GAG_STEPS)
        x = torch.linspace(0.1, 1.0, len(GAG_STEPS), dtype=torch.float64, device=saliency.device)
        return saliency, q, x
    if protocol == "rise":
        hw = h * w
        step = pixels_per_step or w
        if step < 1:
            raise ConfigError(f"rise protocol: pixels_per_step must be >= 1, got {step}")
        n_steps = -(-hw // step)
        counts = torch.clamp(torch.arange(n_steps + 1, device=saliency.device) * step, max=hw)
        # rank 0 = most salient; stable sort so ties keep raster order
        order = torch.sort(saliency.reshape(n, -1), dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(hw, device=saliency.device).expand(n, hw).contiguous())
        key = -rank.reshape(n, h, w).double()  # key > -count  <=>  rank < count
        thr = -counts.double()[None].expand(n, -1)
        x = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64, device=saliency.device)
        return key, thr, x
    raise ConfigError(f"auc protocol {protocol!r} is not one of 'gag10', 'rise'")


def _curve(
    model,
    images,
    saliency,
    target,
    protocol,
    kind,
    mean,
    std,
    batch_size,
    pixels_per_step,
    fill,
    blur_kernel,
    blur_sigma,
) -> CurveResult:
    check_maps(saliency, f"{kind} saliency", unit=(protocol == "gag10"))
    check_model_inputs(images, saliency, target)
    key, thr, x = _steps(saliency, protocol, pixels_per_step)
    if kind == "deletion":
        fill = fill if fill is not None else ("mean" if protocol == "gag10" else "black")
        src, base = fill_value(fill, images, mean, std), images
    else:
        if blur_kernel is None:
            blur_kernel, blur_sigma = (33, 16.0) if protocol == "gag10" else (11, 5.0)
        src, base = images, gaussian_blur(images, blur_kernel, blur_sigma)
    curve = masked_batches_probs(
        model, src, base, key, thr.to(key.dtype), target, batch_size=batch_size, desc=kind
    )
    return CurveResult(trapezoid(curve.double(), x).float(), curve, x)


def deletion_auc(
    model: nn.Module,
    images: torch.Tensor,
    saliency: torch.Tensor,
    target: torch.Tensor,
    protocol: Literal["gag10", "rise"] = "gag10",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    batch_size: int = 64,
    pixels_per_step: int | None = None,
    fill: str | float | None = None,
) -> CurveResult:
    """Deletion curve and DAUC (lower is better).

    * ``"gag10"`` (GAG ``xauc_eval.py``, docs/metrics.md#deletion-and-insertion-auc): 10 steps; step k sets the pixels with ``M > q_r``,
      r = 1.0, 0.9, …, 0.1 (GAG quantiles), to 0 in normalised space (``fill="mean"``: the ImageNet-mean
      colour) — 0 %, ~10 %, …, ~90 % removed; AUC = trapezoid over x = 0.1, 0.2, …, 1.0 (maximum 0.9).
    * ``"rise"`` (Petsiuk et al. 2018): ``pixels_per_step`` (default: the image width) most-salient pixels
      removed per step until none is left, to black (``fill="black"``); ties broken in raster order;
      curve of ``ceil(H·W/step) + 1`` points on a normalised x axis in [0, 1]; AUC = trapezoid (RISE's
      ``(Σy − y_0/2 − y_n/2)/n``).

    Args:
        saliency: (N,H,W) maps; in [0, 1] for ``gag10`` (``abs_minmax``); any real ranking for ``rise``.
        fill: override the deletion colour (``"black"``, ``"mean"`` or a pixel value).
    """
    return _curve(
        model,
        images,
        saliency,
        target,
        protocol,
        "deletion",
        mean,
        std,
        batch_size,
        pixels_per_step,
        fill,
        None,
        None,
    )


def insertion_auc(
    model: nn.Module,
    images: torch.Tensor,
    saliency: torch.Tensor,
    target: torch.Tensor,
    protocol: Literal["gag10", "rise"] = "gag10",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    batch_size: int = 64,
    pixels_per_step: int | None = None,
    blur_kernel: int | None = None,
    blur_sigma: float | None = None,
) -> CurveResult:
    """Insertion curve and IAUC (higher is better).

    * ``"gag10"``: start from ``GaussianBlur(kernel 33, σ 16)`` of the normalised image; step k restores
      the pixels with ``M > q_r``, r = 1.0 (nothing), 0.9, …, 0.1 (~90 %); x = 0.1 … 1.0 (max 0.9).
    * ``"rise"``: start from a blur (kernel 11, σ 5, as RISE; reflect padding here where RISE zero-pads)
      and restore ``pixels_per_step`` most-salient pixels per step until the image is whole; x in [0, 1].
    """
    return _curve(
        model,
        images,
        saliency,
        target,
        protocol,
        "insertion",
        mean,
        std,
        batch_size,
        pixels_per_step,
        None,
        blur_kernel,
        blur_sigma,
    )


# --------------------------------------------------------------------------------------------- AUPC
@dataclass(frozen=True)
class AupcResult:
    """SmoothTaylor perturbation curves.

    Attributes:
        aupc: (N,) Simpson area (dx = 1) of each normalised curve (lower = more sensitive map).
        curve: (N,L+1) ``[clean logit, mean logit after 1..L regions] / |clean logit|``; NaN past the last
            region an image could fit (the reference stops early there too).
        n_regions: (N,) regions perturbed per image.
    """

    aupc: torch.Tensor
    curve: torch.Tensor
    n_regions: torch.Tensor


def _select_windows(heat: torch.Tensor, k: int, n_regions: int) -> torch.Tensor:
    """Greedy non-overlapping k×k windows by mean |heat| (ST ``compute_perturbations``). -> (N,L) flat
    top-left index ``y·W + x``, −1 where none is left."""
    n, h, w = heat.shape
    if h <= k or w <= k:
        raise ConfigError(f"aupc: kernel_size {k} needs images larger than {k}×{k}, got {h}×{w}")
    avg = torch.nn.functional.avg_pool2d(heat.abs()[:, None].double(), k, stride=1)[:, 0]
    avg = avg[:, : h - k, : w - k]  # windows touching the bottom/right border are excluded, as in ST
    hh, ww = avg.shape[1:]
    # Column-major order with a stable sort reproduces the reference's tie order (h + w·H indexing).
    flat = avg.transpose(1, 2).reshape(n, -1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    score = torch.empty_like(flat)
    score.scatter_(
        1,
        order,
        -torch.arange(flat.shape[1], device=heat.device, dtype=flat.dtype).expand_as(flat).contiguous(),
    )
    score = score.reshape(n, ww, hh).transpose(1, 2)  # higher = earlier in the reference order
    avail = torch.ones(n, hh, ww, dtype=torch.bool, device=heat.device)
    ys = torch.arange(hh, device=heat.device)[None, :, None]
    xs = torch.arange(ww, device=heat.device)[None, None, :]
    out = torch.full((n, n_regions), -1, dtype=torch.long, device=heat.device)
    for r in range(n_regions):
        s = torch.where(avail, score, -torch.inf).reshape(n, -1)
        best = s.argmax(1)
        found = torch.isfinite(s.gather(1, best[:, None])[:, 0])
        by, bx = best // ww, best % ww
        out[:, r] = torch.where(found, by * w + bx, -1)
        block = ((ys - by[:, None, None]).abs() < k) & ((xs - bx[:, None, None]).abs() < k)
        avail &= ~(block & found[:, None, None])
    return out


def aupc(
    model: nn.Module,
    images: torch.Tensor,
    heatmap: torch.Tensor,
    target: torch.Tensor,
    kernel_size: int = 15,
    n_regions: int = 30,
    n_perturbations: int = 50,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    batch_size: int = 256,
    seed: int = 0,
    generator: torch.Generator | None = None,
    even: Literal["cartwright", "avg", "first", "last"] = "avg",
    seeds: Sequence[int] | None = None,
) -> AupcResult:
    """SmoothTaylor's sensitivity: perturbation curve and AUPC (Goh et al. 2020; ST ``eval.py``; docs/metrics.md#aupc-and-autvc).

    Regions are the up to ``n_regions`` non-overlapping ``kernel_size``² windows with the highest mean
    |heat-map|, chosen greedily. For each region in order, ``n_perturbations`` uniform random patches
    (pixels uniform in [0, 1], per channel — draw mode 0) are pasted into the current image and scored
    (target logit); the curve records their **mean** logit, then the patch whose logit is closest to the
    median is applied for good, so perturbations accumulate. The curve is divided by |clean logit| and
    integrated with Simpson's rule (dx = 1). Lower = the map found more relevant regions.

    Draws come from ``generator`` (CPU) or a fresh one seeded with ``seed``; with ``seeds`` (one per image)
    each image draws from its own generator instead, so its result does not depend on the batch it is in
    (``aupc(x, seeds=s)[i] == aupc(x[i:i+1], seed=s[i])``) while all images still share forward passes.
    Every image in the batch is perturbed at the same step together (N · P images per forward pass chunk).

    Args:
        heatmap: (N,H,W) signed channel sum of the attribution (``to_saliency(mode="signed")``).
        even: Simpson's even-N rule, only used when an image fits an odd number of regions (AUPC with 30
            regions has 31 samples: unaffected).
    """
    check_maps(heatmap, "aupc heatmap")
    check_model_inputs(images, heatmap, target)
    if n_regions < 1 or n_perturbations < 1:
        raise ConfigError(
            f"aupc: n_regions and n_perturbations must be >= 1, got {n_regions}, {n_perturbations}"
        )
    n, c, h, w = images.shape
    if seeds is not None:
        if len(seeds) != n:
            raise ConfigError(f"aupc: expected one seed per image ({n}), got {len(seeds)}")
        gens = [torch.Generator().manual_seed(int(sd)) for sd in seeds]
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    k, p = kernel_size, n_perturbations
    wins = _select_windows(heatmap, k, n_regions)
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, c, 1, 1)
    cur = images.clone()
    clean = model_scores(model, images, target, batch_size, output="logit").double()
    curve = torch.full((n, n_regions + 1), float("nan"), dtype=torch.float64, device=images.device)
    curve[:, 0] = clean
    dy = torch.arange(k, device=images.device)
    per_chunk = max(1, batch_size // p)  # images whose P candidates fit one forward pass (bounded memory)
    for r in bar(range(n_regions), total=n_regions, desc="aupc regions", unit="region"):
        act = (wins[:, r] >= 0).nonzero()[:, 0].to(images.device)
        if len(act) == 0:
            break
        # drawn for all active images at once, so the draws do not depend on batch_size
        if seeds is not None:
            patches = torch.stack([torch.rand(p, c, k, k, generator=gens[int(i)]) for i in act])
        else:
            patches = torch.rand(len(act), p, c, k, k, generator=g)
        patches = patches.to(images.device, images.dtype)
        patches = (patches - m[:, None]) / s[:, None]  # uniform pixels -> model space, (A,P,C,k,k)
        for a0 in range(0, len(act), per_chunk):
            idx = act[a0 : a0 + per_chunk]
            na = len(idx)
            y0, x0 = wins[idx, r] // w, wins[idx, r] % w
            rows = (y0[:, None] + dy)[:, None, None, :, None]  # (A,1,1,k,1)
            cols = (x0[:, None] + dy)[:, None, None, None, :]
            batch = cur[idx][:, None].repeat(1, p, 1, 1, 1)  # (A,P,C,H,W)
            ai = torch.arange(na, device=images.device)[:, None, None, None, None]
            pi = torch.arange(p, device=images.device)[None, :, None, None, None]
            ci = torch.arange(c, device=images.device)[None, None, :, None, None]
            batch[ai, pi, ci, rows, cols] = patches[a0 : a0 + na]
            flat_t = target[idx].repeat_interleave(p)
            logits = model_scores(model, batch.reshape(-1, c, h, w), flat_t, batch_size, output="logit")
            logits = logits.double().reshape(na, p)
            curve[idx, r + 1] = logits.mean(1)
            srt = logits.sort(1).values
            median = (srt[:, (p - 1) // 2] + srt[:, p // 2]) / 2  # numpy's median (mean of the middle two)
            best = (logits - median[:, None]).abs().argmin(1)  # first index on ties, as the reference loop
            cur[idx] = batch[torch.arange(na, device=images.device), best]
    curve = curve / clean.abs()[:, None]
    n_done = torch.isfinite(curve).sum(1) - 1
    area = (
        torch.stack([simpson(curve[i, : int(n_done[i]) + 1], dx=1.0, even=even) for i in range(n)])
        if n
        else torch.zeros(0, dtype=torch.float64)
    )
    return AupcResult(area.float(), curve.float(), n_done)
