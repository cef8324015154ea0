"""What chance scores on IIR and App. C's relative attribution change (BAM §4.4, App. C).

Both metrics count only how much a method's region attribution *moves* between x and x + δ, never whether it
points at the right place. A method whose map does not depend on its input (a constant map, or one random map
reused for both images) never moves: IIR = 1 and a change of 0, the best scores there are. A map drawn afresh
for every input (bamkit's ``random``) moves only by the spread of a random region mean, which is small for a
region of many pixels: its IIR is close to 1 too. These functions give that value for the regions a run scored,
so that a report can print it beside the metric.

Model: every pixel of a random map is uniform in [0, 1); BAM's post-processing (``bam`` mode) divides by the
map's 99th percentile ``q`` (≈ 0.99) and clips at 1, so a pixel is ``v = min(u / q, 1)``: uniform on [0, 1)
with an atom of mass ``1 − q`` at 1 (mean ``μ = 1 − q/2``, second moment ``1 − 2q/3``). ``g_c`` is the mean of
``n`` such pixels (the region's area), and x and x + δ get independent maps. For ``n ≥ 30`` the mean is normal
to far better than the precision that matters here; for smaller regions its distribution is computed exactly on
a grid (the n-fold convolution of the pixel's distribution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

P99 = 0.99  # the 99th percentile of a map of uniform pixels (any map of more than a few hundred pixels)
_NORMAL_FROM = 30  # regions at least this large: the normal approximation of the region mean
_GRID = 400  # grid points per unit of a pixel's value for the exact small-region distribution


def _pixel_moments(q: float) -> tuple[float, float]:
    mean = 1 - q / 2
    return mean, (1 - 2 * q / 3) - mean**2


def _mean_density(n: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(grid of g in [0, 1], probability mass of the mean of ``n`` pixels on it), by FFT convolution."""
    h = 1.0 / _GRID
    pixel = np.zeros(_GRID + 1)
    pixel[: int(round(q * _GRID))] = h / q  # u / q uniform on [0, 1) while u < q
    pixel[-1] += 1 - q  # clipped at 1
    pixel /= pixel.sum()
    size = 1 << int(math.ceil(math.log2(n * _GRID + 1)))
    total = np.fft.irfft(np.fft.rfft(pixel, size) ** n, size)[: n * _GRID + 1].clip(min=0)
    total /= total.sum()
    return np.arange(n * _GRID + 1) / (n * _GRID), total


def iir_chance(areas: Sequence[int], t: float = 0.1, q: float = P99) -> float:
    """Expected IIR of a map drawn independently for x and for x + δ, over pairs whose regions have ``areas``
    pixels: the mean over pairs of ``P(|g₂ − g₁| < t·g₁)``."""
    mu, var = _pixel_moments(q)
    out = []
    for n in map(int, areas):
        if n < 1:
            continue
        if n >= _NORMAL_FROM:  # g₂ − g₁ ~ N(0, 2σ²/n), and g₁ ≈ μ to O(1/√n)
            out.append(math.erf(t * mu * math.sqrt(n) / (2 * math.sqrt(var))))
            continue
        g, p = _mean_density(n, q)
        cdf = np.cumsum(p)
        hi = np.interp(g * (1 + t), g, cdf, right=1.0)
        lo = np.interp(g * (1 - t), g, cdf, left=0.0)
        out.append(float(np.sum(p * np.clip(hi - lo, 0, 1))))
    return float(np.mean(out)) if out else math.nan


def attribution_change_chance(areas: Sequence[int], q: float = P99) -> float:
    """Expected relative attribution change ``|g₂ − g₁| / g₁`` of independent maps (App. C), over pairs with
    regions of ``areas`` pixels."""
    mu, var = _pixel_moments(q)
    out = []
    for n in map(int, areas):
        if n < 1:
            continue
        if n >= _NORMAL_FROM:  # E|g₂ − g₁| = 2σ/√(πn), divided by g₁ ≈ μ
            out.append(2 * math.sqrt(var) / math.sqrt(math.pi * n) / mu)
            continue
        g, p = _mean_density(n, q)
        bins = max(1, len(g) // 1024)  # the double sum on at most ~1,000 points: coarser bins, same masses
        cut = len(g) // bins * bins
        g = g[:cut].reshape(-1, bins).mean(1)
        p = p[:cut].reshape(-1, bins).sum(1)
        keep = g > 0  # g₁ = 0 has no ratio (App. C leaves such pairs out)
        diff = np.abs(g[None, :] - g[keep][:, None]) / g[keep][:, None]
        out.append(float(p[keep] @ diff @ p / p[keep].sum()))
    return float(np.mean(out)) if out else math.nan
