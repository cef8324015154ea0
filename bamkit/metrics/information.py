"""Explanation certainty: the mutual information I(x; z) between an image and its explanation (Luo et al.,
"Sampling matters in explanations", 2025; docs/metrics.md#mutual-information) — with a bamkit estimator, since the paper names none."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from bamkit.errors import ConfigError, DataError
from bamkit.metrics.functional import check_maps

MI_ESTIMATOR_NOTE = (
    "bamkit estimator: the Sampling-Matters paper does not specify its MI estimator; bamkit treats each "
    "image's (gray pixel, explanation value) pairs as i.i.d. samples and uses a 2-D histogram plug-in (nats)"
)


def _gray(pixels: torch.Tensor) -> torch.Tensor:
    if pixels.shape[1] == 3:  # ITU-R 601 luma, as PIL's "L"
        w = torch.tensor([0.299, 0.587, 0.114], dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
        return (pixels * w).sum(1)
    return pixels.mean(1)


def _minmax(z: torch.Tensor) -> torch.Tensor:
    lo = z.amin(1, keepdim=True)
    span = z.amax(1, keepdim=True) - lo
    return torch.where(span > 0, (z - lo) / span.clamp_min(1e-300), torch.zeros_like(z))


def _entropy(counts: torch.Tensor, n: float) -> torch.Tensor:
    p = counts / n
    return -(torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0.0)).sum(-1)


def _ksg(x: np.ndarray, z: np.ndarray, k: int) -> float:
    """Kraskov–Stögbauer–Grassberger estimator (algorithm 1, max-norm), nats."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    pts = np.stack([x, z], 1)
    eps = cKDTree(pts).query(pts, k=k + 1, p=np.inf)[0][:, -1]

    def count(a):
        s = np.sort(a)
        return np.searchsorted(s, a + eps, "left") - np.searchsorted(s, a - eps, "right") - 1

    n = len(x)
    return float(digamma(k) + digamma(n) - np.mean(digamma(count(x) + 1) + digamma(count(z) + 1)))


def mutual_information(
    pixels: torch.Tensor,
    explanation: torch.Tensor,
    bins: int = 32,
    miller_madow: bool = False,
    estimator: Literal["histogram", "ksg"] = "histogram",
    k: int = 3,
    max_samples: int = 4096,
    seed: int = 0,
) -> torch.Tensor:
    """Explanation certainty I(x; z) in nats per image — **bamkit estimator** (docs/metrics.md#mutual-information, :data:`MI_ESTIMATOR_NOTE`).

    Luo et al. lower-bound explanation certainty by I(x; z) under a pixel-wise i.i.d. assumption but do not
    say how they estimate it. bamkit takes that assumption literally: the H·W pairs (gray pixel intensity,
    min–max-normalised explanation value) of one image are samples of (x, z).

    * ``"histogram"``: equal-width ``bins``×``bins`` plug-in estimate on [0, 1]², ``I = H(x) + H(z) − H(x,z)``;
      ``miller_madow`` adds ``(K_x + K_z − K_xz − 1)/(2n)`` (K = occupied bins), removing most of the
      plug-in's positive bias.
    * ``"ksg"``: KSG k-NN estimator (k = 3) on a seeded subset of ``max_samples`` pixels, with 1e-10 jitter
      to break the ties of 8-bit pixels.

    A constant explanation carries no information: I = 0. Higher is better.

    Args:
        pixels: (N,C,H,W) images in [0, 1] pixel space (denormalise model inputs first).
        explanation: (N,H,W) 2-D maps (any range; min–max normalised here).

    Returns:
        (N,) float64 MI in nats.
    """
    check_maps(explanation, "mutual_information explanation")
    if (
        pixels.ndim != 4
        or pixels.shape[0] != explanation.shape[0]
        or pixels.shape[2:] != explanation.shape[1:]
    ):
        raise DataError(
            f"mutual_information: pixels {tuple(pixels.shape)} must be (N,C,H,W) matching "
            f"explanation {tuple(explanation.shape)}"
        )
    if float(pixels.min()) < -1e-6 or float(pixels.max()) > 1 + 1e-6:
        raise DataError("mutual_information: pixels must be in [0, 1]; pass Preprocess.denormalize(inputs)")
    n_img = pixels.shape[0]
    x = _gray(pixels.double()).reshape(n_img, -1).clamp(0, 1)
    z = _minmax(explanation.double().reshape(n_img, -1))
    if estimator == "ksg":
        rng = np.random.default_rng(seed)
        out = []
        for xi, zi in zip(x.cpu().numpy(), z.cpu().numpy()):
            if zi.max() == zi.min():
                out.append(0.0)
                continue
            idx = rng.permutation(len(xi))[:max_samples]
            xs = xi[idx] + 1e-10 * rng.standard_normal(len(idx))
            zs = zi[idx] + 1e-10 * rng.standard_normal(len(idx))
            out.append(_ksg(xs, zs, k))
        return torch.tensor(out, dtype=torch.float64)
    if estimator != "histogram":
        raise ConfigError(f"mutual_information: estimator {estimator!r} is not 'histogram' or 'ksg'")
    if bins < 2:
        raise ConfigError(f"mutual_information: bins must be >= 2, got {bins}")
    n = x.shape[1]
    bx = (x * bins).long().clamp_(0, bins - 1)
    bz = (z * bins).long().clamp_(0, bins - 1)
    flat = (torch.arange(n_img, device=x.device)[:, None] * bins * bins + bx * bins + bz).reshape(-1)
    joint = torch.bincount(flat, minlength=n_img * bins * bins).reshape(n_img, bins, bins).double()
    px, pz = joint.sum(2), joint.sum(1)
    mi = _entropy(px, n) + _entropy(pz, n) - _entropy(joint.reshape(n_img, -1), n)
    if miller_madow:
        kx, kz = (px > 0).sum(1), (pz > 0).sum(1)
        kxz = (joint.reshape(n_img, -1) > 0).sum(1)
        mi = mi + (kx + kz - kxz - 1).double() / (2 * n)
    return mi
