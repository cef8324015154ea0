"""Pure maths shared by several metrics: validation, GAG quantiles, quadrature, blur, batched model scoring.

Everything is torch and follows the device of its inputs; nothing here picks a device. The only numpy is in
:func:`gag_rates`, which must reproduce the reference's float rounding of ``np.arange`` exactly (docs/metrics.md#rcap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bamkit.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Score:
    """An aggregate with its sample size, so an empty aggregate is visible (NaN *and* ``n == 0``).

    Args:
        value: the aggregate (NaN when ``n == 0``).
        n: number of rows that entered the aggregate.
        excluded: rows left out, by reason (e.g. ``{"incorrect": 3, "empty_mask": 1}``).
    """

    value: float
    n: int
    excluded: dict[str, int] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)


# --------------------------------------------------------------------------------------------- validation
def check_maps(maps: torch.Tensor, name: str = "saliency", unit: bool = False) -> torch.Tensor:
    """Validate a stack of 2-D maps (N,H,W); with ``unit`` also require values in [0, 1] and no NaN."""
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise DataError(
            f"{name}: expected a tensor of 2-D maps (N,H,W), got {shape}; reduce attributions with "
            "bamkit.attribution.to_saliency first"
        )
    if unit and maps.numel():
        lo, hi = float(maps.min()), float(maps.max())
        if not (lo >= -1e-6 and hi <= 1 + 1e-6):  # also false for NaN
            raise DataError(
                f"{name}: expected values in [0, 1], got range [{lo:.4g}, {hi:.4g}]; use to_saliency(mode="
                "'abs_minmax') (docs/conventions.md#saliency-modes) for this metric"
            )
    return maps


def check_same_shape(**tensors: torch.Tensor) -> None:
    """All tensors have the same shape (names used in the message)."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise DataError(f"expected equal shapes, got {desc}; pass one row per image/pair to each argument")


def check_model_inputs(images: torch.Tensor, maps: torch.Tensor, target: torch.Tensor) -> None:
    """images (N,C,H,W), maps (N,H,W) at the same resolution, target (N,) integer."""
    if images.ndim != 4:
        raise DataError(f"images: expected normalised (N,C,H,W), got shape {tuple(images.shape)}")
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise DataError(
            f"maps: expected (N,H,W) = {(images.shape[0], *images.shape[2:])} to match images, got "
            f"{tuple(maps.shape)}; resize maps to the model input first"
        )
    devices = {str(images.device), str(maps.device), str(target.device)}
    if len(devices) > 1:
        raise DataError(
            f"images, maps and target are on different devices ({images.device}, {maps.device}, "
            f"{target.device}); move them to the model's device first"
        )
    if target.shape != (images.shape[0],) or target.dtype.is_floating_point:
        raise DataError(
            f"target: expected an integer tensor of shape ({images.shape[0]},), got "
            f"{target.dtype} {tuple(target.shape)}"
        )


def as_bool(x: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """A (n,) bool tensor from bool/0-1 input."""
    x = torch.as_tensor(x)
    if x.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},), got {tuple(x.shape)}")
    return x.bool()


# --------------------------------------------------------------------------------------------- quantiles
def gag_rates(lower_bound: float, interval: float) -> list[float]:
    """The RCAP recovery rates ``round(arange(lower_bound/100, 1, interval/100), 2)`` (docs/metrics.md#rcap step 1).

    ``np.arange`` is used on purpose: its float accumulation decides the last element, and RCAP must match
    the reference's rate list exactly (50/10 -> [0.5, 0.6, 0.7, 0.8, 0.9]).
    """
    if not (0 <= lower_bound < 100) or not (0 < interval <= 100):
        raise ConfigError(
            f"rcap: expected 0 <= lower_bound < 100 and 0 < interval <= 100 (percent), got lower_bound="
            f"{lower_bound}, interval={interval}; the paper uses 50 and 10"
        )
    return [round(float(r), 2) for r in np.arange(lower_bound / 100, 1, interval / 100)]


def gag_quantiles(maps: torch.Tensor, rates: Sequence[float]) -> torch.Tensor:
    """GAG's quantile: the element at index ``int(H·W·r) − 1`` of the ascending-sorted map (no interpolation).

    Args:
        maps: (N,H,W).
        rates: K rates in (0, 1].

    Returns:
        (N,K) quantile values in the order of ``rates``.
    """
    flat = maps.reshape(maps.shape[0], -1)
    n = flat.shape[1]
    # Python float arithmetic, as in the reference (e.g. int(10 * 0.7) - 1 == 6).
    idx = [max(int(n * float(r)) - 1, 0) for r in rates]
    v = torch.sort(flat, dim=1).values
    return v[:, torch.as_tensor(idx, device=maps.device, dtype=torch.long)]


def mass_above(maps: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """``Σ {M : M > q}`` for every row and threshold, via sorted suffix sums (no (N,K,H,W) temporary).

    Args:
        maps: (N,H,W). thresholds: (N,K).

    Returns:
        (N,K) float64 sums.
    """
    v = torch.sort(maps.reshape(maps.shape[0], -1).double(), dim=1).values
    csum = torch.cat([torch.zeros_like(v[:, :1]), v.cumsum(1)], dim=1)  # csum[:, j] = sum of the j smallest
    j = torch.searchsorted(v, thresholds.double().contiguous(), right=True)
    return csum[:, -1:] - torch.gather(csum, 1, j)


# --------------------------------------------------------------------------------------------- quadrature
def trapezoid(
    y: torch.Tensor, x: torch.Tensor | Sequence[float] | None = None, dx: float = 1.0
) -> torch.Tensor:
    """Trapezoid rule along the last dimension (``sklearn.metrics.auc`` / ``numpy.trapezoid``)."""
    if y.shape[-1] < 2:
        return torch.zeros(y.shape[:-1], dtype=y.dtype, device=y.device)
    if x is None:
        return dx * (y[..., 1:] + y[..., :-1]).sum(-1) / 2
    x = torch.as_tensor(x, dtype=y.dtype, device=y.device)
    return ((x[1:] - x[:-1]) * (y[..., 1:] + y[..., :-1]) / 2).sum(-1)


EvenRule = Literal["cartwright", "avg", "first", "last"]


def _simpson_odd(y: torch.Tensor, dx: float) -> torch.Tensor:
    n = y.shape[-1]
    if n == 1:
        return torch.zeros(y.shape[:-1], dtype=y.dtype, device=y.device)
    w = torch.ones(n, dtype=y.dtype, device=y.device)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return dx / 3.0 * (y * w).sum(-1)


def simpson(y: torch.Tensor, dx: float = 1.0, even: EvenRule = "cartwright") -> torch.Tensor:
    """Composite Simpson's rule on equally spaced samples along the last dimension.

    Odd N is the classic composite rule (what every SciPy version computes). Even N needs one extra
    interval (docs/metrics.md#aupc-and-autvc: the answer depends on the SciPy version):

    * ``"cartwright"``: Simpson on the first N−1 samples plus Cartwright's quadratic correction for the last
      interval, ``dx·(5 y[-1] + 8 y[-2] − y[-3])/12`` — ``scipy.integrate.simpson`` since SciPy 1.11.
    * ``"avg"``: the legacy ``scipy.integrate.simps(even='avg')`` default (SciPy < 1.11), the mean of
      "Simpson on the first N−1 + trapezoid on the last interval" and "trapezoid on the first interval +
      Simpson on the last N−1". This is what SmoothTaylor's AUTVC numbers were computed with.
    * ``"first"`` / ``"last"``: the two halves of ``"avg"``.

    N = 2 is the trapezoid rule under every rule; N = 1 integrates to 0.

    Args:
        y: (..., N) samples.
        dx: spacing.
        even: the even-N rule.

    Returns:
        (...) integrals.
    """
    if even not in ("cartwright", "avg", "first", "last"):
        raise ConfigError(f"simpson: even rule {even!r} is not one of 'cartwright', 'avg', 'first', 'last'")
    n = y.shape[-1]
    if n % 2 == 1:
        return _simpson_odd(y, dx)
    if n == 2:
        return trapezoid(y, dx=dx)
    first = _simpson_odd(y[..., :-1], dx) + dx * (y[..., -1] + y[..., -2]) / 2
    last = dx * (y[..., 0] + y[..., 1]) / 2 + _simpson_odd(y[..., 1:], dx)
    if even == "first":
        return first
    if even == "last":
        return last
    if even == "avg":
        return (first + last) / 2
    return _simpson_odd(y[..., :-1], dx) + dx * (5 * y[..., -1] + 8 * y[..., -2] - y[..., -3]) / 12


# --------------------------------------------------------------------------------------------- images
def fill_value(
    kind: str | float, like: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """A (1,C,1,1) model-space fill colour: ``"black"`` (pixel 0), ``"mean"`` (0 in normalised space,
    the ImageNet-mean gray) or a float pixel value in [0, 1]."""
    c = like.shape[1]
    if len(mean) != c or len(std) != c:
        raise ConfigError(f"mean/std: expected {c} channel values each, got {len(mean)} and {len(std)}")
    m = torch.tensor(mean, dtype=like.dtype, device=like.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=like.dtype, device=like.device).view(1, c, 1, 1)
    if kind == "mean":
        return torch.zeros_like(m)
    if kind == "black":
        return (0.0 - m) / s
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return (float(kind) - m) / s
    raise ConfigError(f"fill: expected 'black', 'mean' or a pixel value in [0, 1], got {kind!r}")


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N,C,H,W) with torchvision's kernel and reflect padding.

    Same kernel and padding as ``torchvision.transforms.v2.GaussianBlur`` (GAG's insertion start). Reflect
    padding needs the pad to be smaller than the image; tiny test images fall back to replicate padding.
    """
    if kernel_size < 1 or kernel_size % 2 == 0 or sigma <= 0:
        raise ConfigError(f"blur: expected an odd kernel_size >= 1 and sigma > 0, got {kernel_size}, {sigma}")
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = kernel_size // 2
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    y = F.pad(x, (pad, pad, pad, pad), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, kernel_size), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, kernel_size, 1), groups=c)


# --------------------------------------------------------------------------------------------- model calls
def masked_batches_probs(
    model: nn.Module,
    src: torch.Tensor,
    base: torch.Tensor,
    key: torch.Tensor,
    thresholds: torch.Tensor,
    target: torch.Tensor,
    pairs: torch.Tensor | None = None,
    batch_size: int = 64,
    desc: str = "",
    output: Literal["prob", "logit"] = "prob",
) -> torch.Tensor:
    """Score many masked composites ``where(key[i] > thr[i,k], src[i], base[i])`` in large batches.

    Every metric that recovers, deletes or inserts pixels by a per-image ranking is this one operation, so
    all (image, step) composites of a batch of images go through the model together under ``no_grad``, built
    on the fly chunk by chunk (memory is bounded by ``batch_size`` whatever N·K is).

    Args:
        model: eval-mode classifier returning logits.
        src, base: (N,C,H,W) or broadcastable (1,C,1,1) images in model space.
        key: (N,H,W) per-pixel key (a saliency map, or minus a pixel rank).
        thresholds: (N,K) per-image, per-step thresholds.
        target: (N,) class index.
        pairs: (P,2) (image, step) pairs to score; all N·K when None.
        batch_size: composites per forward pass.
        output: softmax probability or raw logit of the target.

    Returns:
        (N,K) scores, NaN where a pair was not requested.
    """
    from bamkit.progress import bar

    n, k = thresholds.shape
    if pairs is None:
        ii, kk = torch.meshgrid(
            torch.arange(n, device=key.device), torch.arange(k, device=key.device), indexing="ij"
        )
        pairs = torch.stack([ii.reshape(-1), kk.reshape(-1)], 1)
    out = torch.full((n, k), float("nan"), dtype=torch.float32, device=key.device)
    src_n = src.expand(n, *src.shape[1:]) if src.shape[0] == 1 else src
    base_n = base.expand(n, *base.shape[1:]) if base.shape[0] == 1 else base
    steps = range(0, pairs.shape[0], batch_size)
    with torch.no_grad():
        for s in bar(steps, total=len(steps), desc=desc or "perturbed images", unit="batch"):
            p = pairs[s : s + batch_size]
            i, j = p[:, 0], p[:, 1]
            m = key[i] > thresholds[i, j][:, None, None]
            x = torch.where(m[:, None], src_n[i], base_n[i])
            logits = model(x)
            score = logits.float().softmax(1) if output == "prob" else logits.float()
            out[i, j] = score.gather(1, target[i].long()[:, None])[:, 0].to(out.device)
    return out


def model_scores(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    batch_size: int = 64,
    output: Literal["prob", "logit"] = "prob",
) -> torch.Tensor:
    """Softmax probability (or logit) of ``target`` for (M,C,H,W) inputs, in batches under ``no_grad``."""
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            logits = model(x[s : s + batch_size]).float()
            score = logits.softmax(1) if output == "prob" else logits
            outs.append(score.gather(1, target[s : s + batch_size].long()[:, None])[:, 0])
    return torch.cat(outs) if outs else torch.zeros(0, device=x.device)


def nanmean_count(values: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[float, int]:
    """Mean over finite (and kept) entries, with the count; NaN when nothing is left."""
    ok = torch.isfinite(values)
    if keep is not None:
        ok = ok & keep
    n = int(ok.sum())
    return (float(values[ok].double().mean()) if n else math.nan), n
