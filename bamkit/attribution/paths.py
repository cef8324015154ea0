"""Path ingredients of the integrated-gradient family (docs/conventions.md#preprocessing, docs/methods.md): baselines in model space and the
quadrature rules that place and weight the points of ∫_0^1 ∇f(x' + α(x − x')) dα."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import numpy as np
import torch

from bamkit.errors import ConfigError

#: Quadrature rules of :class:`StraightPath` (docs/methods.md).
PATH_RULES = ("trapezoid", "left", "right", "middle", "bam_linspace", "gausslegendre")


def channel_stats(
    mean: Sequence[float], std: Sequence[float], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    kw = {"device": like.device, "dtype": like.dtype}
    c = like.shape[1]
    if len(mean) != c or len(std) != c:
        raise ConfigError(
            f"mean/std have {len(mean)}/{len(std)} entries but the inputs have {c} channels; "
            "pass mean=/std= matching the model's input normalisation"
        )
    return torch.tensor(mean, **kw).view(1, c, 1, 1), torch.tensor(std, **kw).view(1, c, 1, 1)


def _tensor_key(t: torch.Tensor) -> tuple:
    digest = hashlib.sha1(t.detach().to("cpu", torch.float64).contiguous().numpy().tobytes()).hexdigest()
    return ("tensor", tuple(t.shape), digest)


def resolve_baseline(
    baseline: str | float | torch.Tensor, x: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """The baseline x' in model space, broadcast to ``x`` (N,C,H,W) (docs/conventions.md#preprocessing).

    ``"black"`` is pixel value 0 mapped through the normalisation (BAM's IG baseline); ``"mean"`` is 0 in model
    space (the ImageNet-mean gray that Guided IG and Park use); a number is a constant in model space; a tensor
    (C,H,W), (1,C,H,W) or (N,C,H,W) is used as given.
    """
    if isinstance(baseline, str):
        if baseline == "black":
            m, s = channel_stats(mean, std, x)
            return ((0.0 - m) / s).expand_as(x)
        if baseline == "mean":
            return torch.zeros_like(x)
        raise ConfigError(f"baseline {baseline!r} is not 'black', 'mean', a number or a tensor")
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(device=x.device, dtype=x.dtype)
        if b.ndim == 3:
            b = b[None]
        try:
            return b.expand_as(x)
        except RuntimeError:
            raise ConfigError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to the "
                f"inputs {tuple(x.shape)}; give (C,H,W), (1,C,H,W) or (N,C,H,W)"
            ) from None
    raise ConfigError(
        f"baseline must be 'black', 'mean', a number or a tensor, got {type(baseline).__name__}"
    )


def baseline_key(baseline: str | float | torch.Tensor) -> Hashable:
    return _tensor_key(baseline) if isinstance(baseline, torch.Tensor) else baseline


def path_points(n_steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions α ∈ [0, 1] and weights of an ``n_steps``-point rule for ∫_0^1 g(α) dα (docs/methods.md).

    ``bam_linspace`` is PAIR saliency 0.0.5 / BAM: ``linspace(0, 1, n)`` with equal weights ``1/n`` (both
    endpoints, not a clean Riemann rule); ``trapezoid``, ``left``, ``right``, ``middle`` and ``gausslegendre``
    match captum's ``riemann_*`` and ``gausslegendre`` methods.
    """
    if n_steps < 1:
        raise ConfigError(f"n_steps must be >= 1, got {n_steps}")
    n = n_steps
    if rule == "bam_linspace":
        a = np.linspace(0.0, 1.0, n) if n > 1 else np.ones(1)
        w = np.full(n, 1.0 / n)
    elif rule == "trapezoid":
        if n < 2:
            raise ConfigError("the trapezoid rule needs n_steps >= 2")
        a = np.linspace(0.0, 1.0, n)
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
    elif rule == "left":
        a, w = np.linspace(0.0, 1.0 - 1.0 / n, n), np.full(n, 1.0 / n)
    elif rule == "right":
        a, w = np.linspace(1.0 / n, 1.0, n), np.full(n, 1.0 / n)
    elif rule == "middle":
        a, w = np.linspace(0.5 / n, 1.0 - 0.5 / n, n), np.full(n, 1.0 / n)
    elif rule == "gausslegendre":
        z, wz = np.polynomial.legendre.leggauss(n)
        a, w = (z + 1.0) / 2.0, wz / 2.0
    else:
        raise ConfigError(f"IG rule {rule!r} is not one of {', '.join(PATH_RULES)}")
    return a, w
