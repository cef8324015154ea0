"""SmoothTaylor's noise level (Goh et al. 2020): the area under the multi-scale average total variation curve
of a signed heat-map (AUTVC; docs/metrics.md#aupc-and-autvc)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bamkit.metrics.functional import check_maps, simpson


def average_total_variation(heat: np.ndarray, norm: int = 1, percentile: float = 99) -> float:
    """ST's ATV of one 2-D map: ``abs_p99`` normalisation, then ``(Σ|Δx| + Σ|Δy|)/(H·W)`` (L1; for p > 1 the
    two sums are p-norms). A constant map (p99 == min) has no variation: 0."""
    a = np.abs(heat.astype(np.float64))
    lo, hi = a.min(), np.percentile(a, percentile)
    if not hi > lo:
        return 0.0
    a = np.clip((a - lo) / (hi - lo), 0, 1)
    dx, dy = np.abs(a[:, 1:] - a[:, :-1]), np.abs(a[1:] - a[:-1])
    if norm > 1:
        total = (dx**norm).sum() ** (1 / norm) + (dy**norm).sum() ** (1 / norm)
    else:
        total = dx.sum() + dy.sum()
    return float(total / a.size)


@dataclass(frozen=True)
class AutvcResult:
    """AUTVC per map and the ATV at each pyramid level (levels differ in number only with map size)."""

    autvc: torch.Tensor
    atv: list[list[float]]


def autvc(
    heatmaps: torch.Tensor,
    downscale: float = 1.5,
    min_size: int = 30,
    norm: int = 1,
    even: Literal["cartwright", "avg", "first", "last"] = "avg",
) -> AutvcResult:
    """SmoothTaylor's noise level: Simpson area (dx = 1) of the average total variation over a Gaussian
    pyramid (``skimage.transform.pyramid_gaussian``, downscale 1.5) of each signed heat-map, stopping at
    the first level smaller than ``min_size`` (docs/metrics.md#aupc-and-autvc). Lower = smoother.

    A 224² map has 6 levels (even), where SciPy's Simpson changed in 1.11: ``even="avg"`` (default)
    reproduces the legacy rule the published numbers used; ``"cartwright"`` gives current SciPy. The
    pyramid runs on the CPU with scikit-image (one small map at a time; no model involved).

    Args:
        heatmaps: (N,H,W) signed channel sums (``to_saliency(mode="signed")``).
    """
    from skimage.transform import pyramid_gaussian

    check_maps(heatmaps, "autvc heatmaps")
    out, series = [], []
    for hm in heatmaps.detach().double().cpu().numpy():
        atv = []
        for level in pyramid_gaussian(hm, downscale=downscale):
            if level.shape[0] < min_size or level.shape[1] < min_size:
                break
            atv.append(average_total_variation(level, norm=norm))
        series.append(atv)
        out.append(
            float(simpson(torch.tensor(atv, dtype=torch.float64), dx=1.0, even=even)) if atv else math.nan
        )
    return AutvcResult(torch.tensor(out, dtype=torch.float32), series)
