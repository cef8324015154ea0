"""Streaming reducers over per-sample kernel outputs (docs/methods.md).

A reducer never stores the stack of per-sample gradients ``{g_i}``: ``init`` allocates per-image accumulators,
``update`` folds in one batch (rows belong to images ``batch.image_index``) in place, ``finalize`` returns the
attribution (N,C',H,W). So memory is bounded by the batch size whatever ``n_samples`` is, and every reducer of a
sampler group is fed from the same gradients (one pass for SmoothGrad, its squared variant, VarGrad,
AbsoluteGrad, Guided AbsoluteGrad and SmoothGrad × Input).

Second moments (VarGrad, Guided AbsoluteGrad) are accumulated as float64 sums of ``g`` and ``g²`` so the
``E[g²] − E[g]²`` difference does not cancel catastrophically in float32.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable

import torch

from bamkit.attribution.samplers import SampleBatch
from bamkit.errors import ConfigError

State = dict


def _w(batch: SampleBatch, g: torch.Tensor) -> torch.Tensor:
    return batch.weight.to(g.dtype).view(-1, *([1] * (g.ndim - 1)))


class Reducer(ABC):
    """Streaming reduction of kernel outputs into one attribution per image."""

    @abstractmethod
    def key(self) -> Hashable:
        """Equal keys = identical results (the engine keeps one state for them)."""

    @abstractmethod
    def init(self, shape: tuple[int, ...], like: torch.Tensor) -> State:
        """Accumulators for ``shape`` = (N,C',H,W) on ``like``'s device."""

    @abstractmethod
    def update(self, state: State, grads: torch.Tensor, batch: SampleBatch) -> None:
        """Fold ``grads`` (B,C',H,W) of ``batch`` into ``state`` in place."""

    @abstractmethod
    def finalize(self, state: State, x: torch.Tensor) -> torch.Tensor:
        """The attribution (N,C',H,W); ``x`` (N,C,H,W) is the clean input."""


class _WeightedSum(Reducer):
    """Σ_i w_i · h(g_i) per image, ``h`` given by :meth:`term`."""

    def init(self, shape, like):
        return {
            "s": torch.zeros(
                shape,
                device=like.device,
                dtype=torch.float32 if like.dtype != torch.float64 else torch.float64,
            )
        }

    def term(self, g: torch.Tensor, batch: SampleBatch) -> torch.Tensor:
        return g

    def update(self, state, grads, batch):
        s = state["s"]
        s.index_add_(0, batch.image_index, self.term(grads.to(s.dtype), batch) * _w(batch, s))

    def finalize(self, state, x):
        return state["s"]


class Mean(_WeightedSum):
    """Weighted mean ``Σ w_i g_i`` (SmoothGrad with w = 1/n; the vanilla gradient with one sample, w = 1)."""

    def key(self):
        return ("mean",)


class MeanSquare(_WeightedSum):
    """``Σ w_i g_i²`` — BAM's "SmoothGrad" (PAIR saliency ``magnitude=True``; docs/methods.md)."""

    def key(self):
        return ("mean_square",)

    def term(self, g, batch):
        return g * g


class MeanAbs(_WeightedSum):
    """``Σ w_i |g_i|`` — AbsoluteGrad (Huang & Liu 2024 eq. 2) and feature suppression (Luo et al. 2025)."""

    def key(self):
        return ("mean_abs",)

    def term(self, g, batch):
        return g.abs()


class PathIntegral(_WeightedSum):
    """``Σ w_i g_i ⊙ offset_i`` with ``offset = x − x'``: Integrated Gradients (Sundararajan et al. 2017)."""

    def key(self):
        return ("path_integral",)

    def term(self, g, batch):
        if batch.offset is None:
            raise ConfigError("PathIntegral needs a sampler that provides offsets (StraightPath)")
        return g * batch.offset.to(g.dtype)


class Taylor(PathIntegral):
    """SmoothTaylor ``(1/N) Σ_i (x − z_i) ⊙ ∇f(z_i)`` over Gaussian roots ``z_i`` (Goh et al. 2020; docs/methods.md)."""

    def key(self):
        return ("taylor",)


class _Moments(Reducer):
    """float64 count, Σg, Σg² per image (unweighted: VarGrad's estimator ignores quadrature weights)."""

    def init(self, shape, like):
        kw = {"device": like.device, "dtype": torch.float64}
        return {
            "n": torch.zeros(shape[0], **kw),
            "s1": torch.zeros(shape, **kw),
            "s2": torch.zeros(shape, **kw),
        }

    def update(self, state, grads, batch):
        g = grads.to(torch.float64)
        idx = batch.image_index
        state["n"].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
        state["s1"].index_add_(0, idx, g)
        state["s2"].index_add_(0, idx, g * g)

    @staticmethod
    def variance(state) -> torch.Tensor:
        n = state["n"].view(-1, *([1] * (state["s1"].ndim - 1)))
        if bool((n < 2).any()):
            raise ConfigError("the variance needs n_samples >= 2 per image")
        mean = state["s1"] / n
        return ((state["s2"] - n * mean * mean) / (n - 1)).clamp_min_(0.0)


class Variance(_Moments):
    """Unbiased element-wise variance of the gradients — VarGrad (Adebayo et al. 2018; GAG eq. 3)."""

    def key(self):
        return ("variance",)

    def finalize(self, state, x):
        return self.variance(state).to(_out_dtype(x))


class GuidedAbs(_Moments):
    """Guided AbsoluteGrad: ``mean|g| ⊙ G``, ``G = 1`` where ``V > quantile_p(V)`` else ``V`` (Huang & Liu 2024
    §3.2, Alg. 1; reference code: quantile per image and channel over H·W, strict ``>``; docs/methods.md).

    Args:
        p: the variance percentile as a fraction (0.85 in the paper's tables); ``p = 0`` gives AbsoluteGrad,
            ``p < 0`` pure variance weighting (as the reference).
        guide_normalize: divide ``V`` by its p-quantile before clipping at 1 (bamkit variant that removes the
            scale dependence of the soft part; docs/methods.md).
    """

    def __init__(self, p: float = 0.85, guide_normalize: bool = False) -> None:
        if not float(p) <= 1.0:
            raise ConfigError(f"p is a percentile as a fraction in [0, 1] (or < 0), got {p}")
        self.p, self.guide_normalize = float(p), bool(guide_normalize)

    def key(self):
        return ("guided_abs", self.p, self.guide_normalize)

    def init(self, shape, like):
        state = super().init(shape, like)
        state["a"] = torch.zeros(shape, device=like.device, dtype=_acc_dtype(like))
        return state

    def update(self, state, grads, batch):
        super().update(state, grads, batch)
        state["a"].index_add_(0, batch.image_index, grads.abs().to(state["a"].dtype))

    def finalize(self, state, x):
        n = state["n"].view(-1, *([1] * (state["a"].ndim - 1))).to(state["a"].dtype)
        mean_abs = state["a"] / n
        if self.p == 0.0:
            return mean_abs.to(_out_dtype(x))
        var = self.variance(state).to(mean_abs.dtype)
        if self.p < 0:
            return (mean_abs * var).to(_out_dtype(x))
        flat = var.flatten(2)
        q = torch.quantile(flat, self.p, dim=2, keepdim=True).view(*var.shape[:2], 1, 1)
        if self.guide_normalize:
            guide = (var / q.clamp_min(torch.finfo(var.dtype).tiny)).clamp_max(1.0)
        else:
            guide = torch.where(var > q, torch.ones_like(var), var)
        return (mean_abs * guide).to(_out_dtype(x))


class TimesInput(Reducer):
    """``inner(g) ⊙ x`` with the clean input (Gradient × Input, Shrikumar et al. 2016; SmoothGrad × Input)."""

    def __init__(self, inner: Reducer) -> None:
        self.inner = inner

    def key(self):
        return ("times_input", self.inner.key())

    def init(self, shape, like):
        return self.inner.init(shape, like)

    def update(self, state, grads, batch):
        self.inner.update(state, grads, batch)

    def finalize(self, state, x):
        return self.inner.finalize(state, x) * x


class NoisyPathIntegral(Reducer):
    """IG-SmoothGrad: the mean over noisy copies of ``IG(x + ε_k)`` (or of its square, ``magnitude=True``, as
    BAM's squared smoothing wrapper; docs/methods.md). Needs :class:`~bamkit.attribution.samplers.NoisyPath` batches.

    Samples arrive image-major and copy-major, so at most one copy is incomplete at a batch boundary; it is
    carried to the next batch — memory stays at one image's worth beyond the output.
    """

    def __init__(self, magnitude: bool = True) -> None:
        self.magnitude = bool(magnitude)

    def key(self):
        return ("noisy_path_integral", self.magnitude)

    def init(self, shape, like):
        return {"out": torch.zeros(shape, device=like.device, dtype=_acc_dtype(like)), "carry": None}

    def update(self, state, grads, batch):
        if batch.copy_index is None or batch.offset is None:
            raise ConfigError("NoisyPathIntegral needs NoisyPath samples (copy_index and offset)")
        slot = batch.image_index * batch.n_copies + batch.copy_index
        uniq, inv, counts = torch.unique_consecutive(slot, return_inverse=True, return_counts=True)
        part = torch.zeros((uniq.shape[0], *grads.shape[1:]), device=grads.device, dtype=state["out"].dtype)
        part.index_add_(0, inv, grads.to(part.dtype) * batch.offset.to(part.dtype) * _w(batch, part))
        counts = counts.tolist()
        slots = uniq.tolist()
        carry = state["carry"]
        if carry is not None:
            if carry[0] != slots[0]:
                raise RuntimeError(
                    "NoisyPathIntegral: samples arrived out of order"
                )  # engine bug, not user input
            part[0] += carry[1]
            counts[0] += carry[2]
            state["carry"] = None
        done = [i for i, c in enumerate(counts) if c == batch.copy_size]
        if counts[-1] != batch.copy_size:
            state["carry"] = (slots[-1], part[-1].clone(), counts[-1])
        if done:
            ig = part[done]
            val = ig * ig if self.magnitude else ig
            img = torch.tensor([slots[i] // batch.n_copies for i in done], device=grads.device)
            state["out"].index_add_(0, img, val / batch.n_copies)

    def finalize(self, state, x):
        if state["carry"] is not None:
            raise RuntimeError("NoisyPathIntegral: a noisy copy's path was not completed")
        return state["out"].to(_out_dtype(x))


def _acc_dtype(like: torch.Tensor) -> torch.dtype:
    """float32 accumulators, float64 when the kernel outputs float64 (reference computations)."""
    return torch.float64 if like.dtype == torch.float64 else torch.float32


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype == torch.float64 else torch.float32
