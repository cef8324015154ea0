"""Ground-truth-mask localisation metrics (GAG ``segmentation_loss.py`` / ``pointing_game_eval.py``, docs/metrics.md#localisation).

Maps are ``to_saliency(mode="abs_minmax")`` maps in [0, 1], (N,H,W); masks are the object masks (N,H,W),
bool or {0,1}. Every function returns one value per image. Lower is better for all losses; the pointing game
is a hit (higher is better).
"""

from __future__ import annotations

import math

import torch

from bamkit.errors import ConfigError, DataError
from bamkit.metrics.functional import check_maps


def _pair(saliency: torch.Tensor, masks: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    check_maps(saliency, f"{name} saliency", unit=True)
    if masks.shape != saliency.shape:
        raise DataError(
            f"{name}: masks shape {tuple(masks.shape)} != saliency shape {tuple(saliency.shape)}; "
            "resize masks to the map resolution"
        )
    return saliency.double(), masks.to(device=saliency.device, dtype=torch.float64)


def dice(saliency: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice coefficient ``D = (2 Σ S·M + s) / (Σ S + Σ M + s)`` over all pixels (smoothing s = 1). (N,)

    An empty mask with an all-zero map gives D = 1 (the smoothing term), and with a non-zero map D → 0.
    """
    m, s = _pair(saliency, masks, "dice")
    inter = (m * s).sum((1, 2))
    return ((2 * inter + smooth) / (s.sum((1, 2)) + m.sum((1, 2)) + smooth)).float()


def dice_loss(saliency: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 − D``. (N,) Lower is better."""
    return 1 - dice(saliency, masks, smooth)


def logcosh_dice(saliency: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Log-cosh Dice loss ``log(cosh(1 − D))`` (GAG's L_lcdce, Table 1/2). (N,) Lower is better."""
    return torch.log(torch.cosh(1 - dice(saliency, masks, smooth).double())).float()


def mae(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``mean |M − S|``. (N,) Lower is better."""
    m, s = _pair(saliency, masks, "mae")
    return (m - s).abs().mean((1, 2)).float()


def sqrt_mae(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``sqrt(mean |M − S|)`` — what GAG reports as "MAE" (docs/metrics.md#localisation). (N,) Lower is better."""
    return mae(saliency, masks).double().sqrt().float()


def rmse(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``sqrt(mean (M − S)²)`` — GAG code's "MSE". (N,) Lower is better."""
    m, s = _pair(saliency, masks, "rmse")
    return ((m - s) ** 2).mean((1, 2)).sqrt().float()


def pointing_game(saliency: torch.Tensor, masks: torch.Tensor, quantile: float = 0.7) -> torch.Tensor:
    """Pointing game as GAG's reference computes it (``pointing_game_eval.py``): the centroid of the pixels ≥ the
    ``quantile`` of the map (linear interpolation, as ``numpy.quantile``), each coordinate the float32 mean of the
    selected pixels' indices **truncated** with ``int()``, must fall inside the mask.

    Returns:
        (N,) float: 1.0 hit, 0.0 miss, NaN where the mask is empty (no target to point at; aggregate with
        ``nanmean`` and report the count).
    """
    return _pointing(saliency, masks, quantile, "truncate")


def pointing_game_round(saliency: torch.Tensor, masks: torch.Tensor, quantile: float = 0.7) -> torch.Tensor:
    """The pointing game with the centroid *rounded* to the nearest pixel (bamkit's earlier variant; differs from
    :func:`pointing_game` when a coordinate's fractional part is ≥ 0.5)."""
    return _pointing(saliency, masks, quantile, "round")


def _pointing(saliency: torch.Tensor, masks: torch.Tensor, quantile: float, centroid: str) -> torch.Tensor:
    if not 0 <= quantile <= 1:
        raise ConfigError(f"pointing_game: quantile must be in [0, 1], got {quantile}")
    m, s = _pair(saliency, masks, "pointing_game")
    n, h, w = m.shape
    flat = m.reshape(n, -1)
    q = torch.quantile(flat, quantile, dim=1, keepdim=True)
    sel = (flat >= q).reshape(n, h, w).float()
    cnt = sel.sum((1, 2))
    ys = torch.arange(h, dtype=torch.float32, device=m.device)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32, device=m.device)[None, None, :]
    mean_y, mean_x = (sel * ys).sum((1, 2)) / cnt, (sel * xs).sum((1, 2)) / cnt
    to_pixel = torch.floor if centroid == "truncate" else torch.round  # int() of a mean >= 0 is its floor
    cy = to_pixel(mean_y).long().clamp(0, h - 1)
    cx = to_pixel(mean_x).long().clamp(0, w - 1)
    hit = s[torch.arange(n, device=m.device), cy, cx] > 0
    empty = s.sum((1, 2)) == 0
    return torch.where(empty, math.nan, hit.double()).float()
