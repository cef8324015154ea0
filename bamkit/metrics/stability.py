"""Stability metrics: Kendall τ and cosine similarity of attributions under input deviations (Park,
"SmoothGrad has better Kendall's rank for removed pixels"; Wang & Kong 2022) — the two protocols (input noise,
attribution-guided masking) live here once, for the library and the evaluate stage alike.

Kendall τ is computed exactly in O(n log² n) with a vectorised bottom-up merge count (no Python loop over
elements), so full 224·224·3 attributions are affordable; ``max_n`` subsamples with a seed (docs/metrics.md#stability).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bamkit.errors import ConfigError, DataError


# --------------------------------------------------------------------------------------------- Kendall τ
def _dense_rank(x: torch.Tensor) -> torch.Tensor:
    return torch.unique(x, return_inverse=True)[1]


def _tie_pairs(ranks: torch.Tensor) -> int:
    c = torch.unique(ranks, return_counts=True)[1].long()
    return int((c * (c - 1) // 2).sum())


def _inversions(v: torch.Tensor) -> int:
    """Number of pairs i < j with v_i > v_j, by a bottom-up merge: at each level, each element of a right
    block counts the elements of its (sorted) left block that exceed it (batched ``searchsorted``)."""
    n = v.numel()
    if n < 2:
        return 0
    size = 1 << (n - 1).bit_length()
    big = int(v.max()) + 1  # padding sorts last and is never counted as greater
    a = torch.cat([v.long(), v.new_full((size - n,), big, dtype=torch.long)])
    total = 0
    width = 1
    while width < size:
        blocks = a.view(-1, 2 * width)
        left, right = blocks[:, :width].contiguous(), blocks[:, width:].contiguous()
        total += int((width - torch.searchsorted(left, right, right=True)).sum())
        a = torch.sort(blocks, dim=1).values.reshape(-1)
        width *= 2
    return total


def kendall_tau(
    u: torch.Tensor,
    v: torch.Tensor,
    variant: Literal["b", "c"] = "b",
    max_n: int | None = None,
    seed: int = 0,
    backend: Literal["auto", "torch", "scipy"] = "auto",
) -> float:
    """Kendall's rank correlation of two flattened tensors, tie-aware (scipy.stats.kendalltau semantics).

    ``τ_b = (C − D) / sqrt((n0 − n1)(n0 − n2))``; ``τ_c = 2m(C − D) / (n²(m − 1))`` with m the smaller number of
    distinct values (Park's notebook uses τ-c; bamkit's default is τ-b, docs/metrics.md#stability). C − D comes from the
    discordant count D = inversions of v after a lexicographic sort by (u, v) (Knight 1966).

    Args:
        u, v: tensors with the same number of elements (flattened).
        variant: ``"b"`` or ``"c"``.
        max_n: if set and smaller than n, use a seeded random subset of that many positions.
        seed: seed of the subset.
        backend: ``"torch"`` counts D on the tensors' device with a vectorised bottom-up merge
            (O(n log² n) work in log n batched passes: fast on a GPU); ``"scipy"`` copies to the CPU and calls
            ``scipy.stats.kendalltau`` (a compiled merge sort: fastest on a CPU). ``"auto"`` picks scipy for
            CPU tensors, torch otherwise. Both give the same τ (tested).

    Returns:
        τ in [−1, 1]; NaN when undefined (fewer than 2 elements, or a constant input).
    """
    u, v = u.reshape(-1), v.reshape(-1)
    if u.numel() != v.numel():
        raise DataError(f"kendall_tau: inputs have {u.numel()} and {v.numel()} elements; expected equal")
    if variant not in ("b", "c"):
        raise ConfigError(f"kendall_tau: variant {variant!r} is not 'b' or 'c'")
    if max_n is not None and u.numel() > max_n:
        idx = torch.randperm(u.numel(), generator=torch.Generator().manual_seed(seed))[:max_n].to(u.device)
        u, v = u[idx], v[idx]
    n = u.numel()
    if n < 2:
        return math.nan
    if backend not in ("auto", "torch", "scipy"):
        raise ConfigError(f"kendall_tau: backend {backend!r} is not 'auto', 'torch' or 'scipy'")
    if backend == "scipy" or (backend == "auto" and u.device.type == "cpu"):
        from scipy import stats

        uu, vv = u.detach().double().cpu().numpy(), v.detach().double().cpu().numpy()
        return float(stats.kendalltau(uu, vv, variant=variant).statistic)
    ru, rv = _dense_rank(u), _dense_rank(v)
    joint = ru * (int(rv.max()) + 1) + rv
    d = _inversions(rv[torch.argsort(joint)])
    n0 = n * (n - 1) // 2
    n1, n2, n3 = _tie_pairs(ru), _tie_pairs(rv), _tie_pairs(joint)
    con_minus_dis = n0 - n1 - n2 + n3 - 2 * d
    if variant == "b":
        den = (n0 - n1) * (n0 - n2)
        return con_minus_dis / math.sqrt(den) if den > 0 else math.nan
    m = min(int(ru.max()) + 1, int(rv.max()) + 1)
    return 2 * m * con_minus_dis / (n * n * (m - 1)) if m > 1 else math.nan


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row cosine of flattened attributions ``⟨a,b⟩/(|a||b|)``, (N,...) -> (N,); NaN for a zero row."""
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.nan).float()


# --------------------------------------------------------------------------------------------- protocols
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# explain(x̂ (M,C,H,W), index (M,) long: the image each copy comes from) -> attributions (M,...), or a dict
# label -> (M,...) when several methods share the copies. The index lets the caller keep each image's target
# and attribution seeds for its copies (paired sampling noise, docs/metrics.md#stability).
Explain = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | dict[str, torch.Tensor]"]
Copies = Iterator[tuple[int, int, torch.Tensor]]


@dataclass(frozen=True)
class StabilityResult:
    """τ and cosine between a(x) and a(x̂) for every image and deviation level.

    Attributes:
        levels: (L,) ε (input noise) or removed ratio (masking).
        tau: (N,L); cosine: (N,L).
        tau_cosine_pearson: Pearson r between τ and cosine over all finite (image, level) points.
        tau_level_spearman: Spearman ρ between τ and the level.
    """

    levels: tuple[float, ...]
    tau: torch.Tensor
    cosine: torch.Tensor
    tau_cosine_pearson: float
    tau_level_spearman: float


def noise_copies(x: torch.Tensor, epsilons: Sequence[float], seeds: Sequence[int]) -> Copies:
    """Protocol 1 copies ``(image index, level index, x̂ (C,H,W))`` in (image, level) order.

    Image i draws ``u = 1 − U[0,1)`` (so u ∈ (0, 1]) from ``torch.Generator().manual_seed(seeds[i])``, one fresh
    draw per ε in order: an image's copies do not depend on the batch, chunk or shard it falls in.

    Args:
        x: (B,C,H,W) normalised inputs.
    """
    for i in range(x.shape[0]):
        g = torch.Generator().manual_seed(int(seeds[i]))
        xi = x[i : i + 1]
        for j, eps in enumerate(epsilons):
            u = (1 - torch.rand(xi.shape, generator=g)).to(xi)
            yield i, j, (xi + eps * u)[0]


def removal_rank(attr: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel by the clean attribution's channel-mean |a|, 0 = most attributed (stable ties:
    the earlier pixel in row-major order ranks first). (B,C',H,W) -> (B,H,W) long."""
    n, _, h, w = attr.shape
    score = attr.abs().mean(1).reshape(n, -1)
    order = torch.sort(score, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1).contiguous())
    return rank.reshape(n, h, w)


def masking_copies(
    x: torch.Tensor, attr: torch.Tensor, ratios: Sequence[float], fill: float | torch.Tensor = 0.0
) -> Copies:
    """Protocol 2 copies ``(image index, level index, x̂ (C,H,W))``: the top ``round(ratio·H·W)`` pixels of the
    clean ranking (:func:`removal_rank`) set to ``fill`` in all channels, each ratio on a fresh copy of x.

    Args:
        x: (B,C,H,W) normalised inputs.
        attr: (B,C',H,W) clean attributions at input size (C' = C or 1).
        fill: a number, or a (C,) / (C,H,W) tensor in model space (e.g. the black image).
    """
    n, _, h, w = x.shape
    rank = removal_rank(attr).to(x.device)[:, None]  # (B,1,H,W)
    f = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    f = f.view(-1, 1, 1) if f.ndim == 1 else f
    for i in range(n):
        for j, r in enumerate(ratios):
            yield i, j, torch.where(rank[i] < round(r * h * w), f, x[i])


def _chunks(it: Iterator, size: int) -> Iterator[list]:
    buf: list = []
    for item in it:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def compare_copies(
    explain: Explain,
    clean: Mapping[str, torch.Tensor],
    copies: Copies,
    tau_seeds: Sequence[int],
    n_levels: int,
    chunk: int = 64,
    variant: Literal["b", "c"] = "b",
    max_n: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """τ and cosine of every copy's attribution against its clean image's, ``chunk`` copies per ``explain``
    call, so memory stays bounded by one chunk of attributions whatever the number of images and levels.

    Args:
        clean: label -> (B,...) clean attributions (the labels ``explain`` returns).
        copies: ``(image index, level index, x̂)`` items (:func:`noise_copies`, :func:`masking_copies`).
        tau_seeds: (B,) seeds of the ``max_n`` element subsets (one subset per image, the same at every level).

    Returns:
        label -> (tau (B,L), cosine (B,L)) float64 arrays (NaN where undefined).
    """
    b = next(iter(clean.values())).shape[0]
    out = {k: (np.full((b, n_levels), np.nan), np.full((b, n_levels), np.nan)) for k in clean}
    for part in _chunks(copies, chunk):
        img = torch.tensor([p[0] for p in part], dtype=torch.long)
        hats = _as_dict(explain(torch.stack([p[2] for p in part]), img), clean)
        for label, hat in hats.items():
            ref = clean[label][img.to(clean[label].device)]
            cos = cosine_similarity(ref, hat).double().cpu().numpy()
            tau, cs = out[label]
            for k, (i, j) in enumerate(zip(img.tolist(), (p[1] for p in part))):
                cs[i, j] = cos[k]
                tau[i, j] = kendall_tau(ref[k], hat[k], variant=variant, max_n=max_n, seed=int(tau_seeds[i]))
    return out


def _as_dict(a: torch.Tensor | Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor] | None = None):
    if isinstance(a, torch.Tensor):
        return {"": a.detach()}
    if like is not None and set(a) != set(like):
        raise DataError(f"explain returned methods {sorted(a)}, expected {sorted(like)}")
    return {k: v.detach() for k, v in a.items()}


def _results(res: dict[str, tuple[np.ndarray, np.ndarray]], levels: Sequence[float]):
    from bamkit.metrics.stats import pearson, spearman

    out = {}
    for label, (tau, cos) in res.items():
        lv = np.broadcast_to(np.asarray(levels, dtype=float), tau.shape)
        r, _ = pearson(tau.reshape(-1).tolist(), cos.reshape(-1).tolist())
        rho, _ = spearman(lv.reshape(-1).tolist(), tau.reshape(-1).tolist())
        out[label] = StabilityResult(tuple(levels), torch.from_numpy(tau), torch.from_numpy(cos), r, rho)
    return out[""] if set(out) == {""} else out


def _seeds(n: int, seed: int, seeds: Sequence[int] | None) -> list[int]:
    if seeds is None:
        return [seed + i for i in range(n)]
    if len(seeds) != n:
        raise DataError(f"stability: {len(seeds)} seeds for {n} images; pass one seed per image")
    return [int(s) for s in seeds]


def input_noise_stability(
    explain: Explain,
    inputs: torch.Tensor,
    epsilons: Sequence[float] = LEVELS,
    variant: Literal["b", "c"] = "b",
    max_n: int | None = None,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    chunk: int = 64,
    clean: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
) -> StabilityResult | dict[str, StabilityResult]:
    """Protocol 1 (Wang & Kong style, as in Park's notebook; docs/metrics.md#stability): ``x̂ = x + ε·u`` with ``u`` uniform in
    (0, 1] per element (one-sided, normalised units), compare the raw flattened a(x) and a(x̂).

    Args:
        explain: ``explain(inputs (M,C,H,W), index (M,)) -> attributions`` (see :data:`Explain`) with the target
            fixed by the caller; a dict of labels evaluates several methods on the same copies.
        inputs: (N,C,H,W) normalised.
        seeds: (N,) per-image seeds of the noise and the τ subsets (default ``seed + i``).
        chunk: perturbed copies per ``explain`` call.
        clean: the clean attributions when the caller already has them (else ``explain(inputs)``).

    Returns:
        a :class:`StabilityResult` (or label -> result when ``explain`` returns a dict).
    """
    n = inputs.shape[0]
    s = _seeds(n, seed, seeds)
    clean = _as_dict(explain(inputs, torch.arange(n)) if clean is None else clean)
    res = compare_copies(
        explain, clean, noise_copies(inputs, epsilons, s), s, len(epsilons), chunk, variant, max_n
    )
    return _results(res, epsilons)


def masking_stability(
    explain: Explain,
    inputs: torch.Tensor,
    ratios: Sequence[float] = LEVELS,
    fill: float | torch.Tensor = 0.0,
    variant: Literal["b", "c"] = "b",
    max_n: int | None = None,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    chunk: int = 64,
    clean: torch.Tensor | None = None,
) -> StabilityResult:
    """Protocol 2 (Park's attribution-guided masking, eq. 6) with the docs/metrics.md#stability fixes: pixels ranked once by
    the *clean* attribution's channel-mean |a|, the top ``round(ratio·H·W)`` pixels set to ``fill`` in all
    channels (0 = the mean colour in normalised space; pass the model-space black for black), on a fresh
    copy of x for every ratio. Desired behaviour: τ and cosine fall monotonically with the ratio and stay
    strongly correlated (not a higher-is-better score).

    Args:
        explain: one method's ``explain(inputs, index) -> (M,C',H,W)`` (the ranking is the method's own).
        seeds: (N,) per-image seeds of the τ subsets (default ``seed + i``).
        clean: the clean attributions when the caller already has them (else ``explain(inputs)``).
    """
    n = inputs.shape[0]
    s = _seeds(n, seed, seeds)
    a = explain(inputs, torch.arange(n)) if clean is None else clean
    if not isinstance(a, torch.Tensor):
        raise DataError("masking_stability: explain must return one tensor (the ranking is per method)")
    if a.ndim != 4 or a.shape[-2:] != inputs.shape[-2:]:
        raise DataError(
            f"masking_stability: explain must return (N,C,H,W) at input size, got {tuple(a.shape)}"
        )
    copies = masking_copies(inputs, a, ratios, fill)
    res = compare_copies(explain, {"": a.detach()}, copies, s, len(ratios), chunk, variant, max_n)
    return _results(res, ratios)
