"""Samplers: the modified inputs x̃ a gradient method evaluates its kernel on (docs/methods.md).

A sampler turns a batch of clean inputs ``x`` (N,C,H,W) into a stream of :class:`SampleBatch` es of at most
``batch_size`` rows: the modified inputs, which image each row belongs to, its quadrature / Monte-Carlo weight and
an optional offset (``x − x̃`` for SmoothTaylor, ``x − baseline`` for IG). Samples are laid out image-major
(all samples of image 0, then image 1, ...), and every random draw for image ``j`` comes from ``gens[j]`` in a
fixed order and in fixed chunks of :data:`DRAW_CHUNK` samples that do not depend on ``batch_size`` or on the
other images — so a batch of images gives exactly the samples of its images one by one.

Equal :meth:`Sampler.key` s mean identical samples: the engine evaluates them once for every method that
shares them (SmoothGrad, squared SmoothGrad, VarGrad, AbsoluteGrad, Guided AbsoluteGrad, SmoothGrad × Input and
SmoothTaylor on one Gaussian batch; Yang & Kim 2019 App. E; Huang & Liu 2024 §3.1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence

import numpy as np
import torch

from bamkit.attribution.batching import (
    ImageDraws,
    SampleBatch,
    blocked,
    draw_chunks,
    gather_rows,
    layout_of,
    rebatch,
)
from bamkit.attribution.paths import baseline_key, channel_stats, path_points, resolve_baseline
from bamkit.errors import ConfigError
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD


def check_count(name: str, value: object, minimum: int = 1, why: str = "") -> int:
    """An integer hyper-parameter (``n_samples``, ``n_steps``) as int, or a ConfigError naming it: ``2.5`` and
    ``True`` are rejected, never truncated."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
    return int(value)


def gaussian_sampler(m: object) -> Gaussian:
    """The SmoothGrad noise sampler of a method with ``n_samples``, ``sigma``, ``noise_space``, ``mean``, ``std``
    (and optionally ``sigma_mode``): every noise-based method builds it here, so equal settings give equal
    sampler keys and the engine shares the samples."""
    return Gaussian(m.n_samples, m.sigma, m.noise_space, m.mean, m.std, getattr(m, "sigma_mode", "relative"))


class Sampler(ABC):
    """Produces the modified inputs of a gradient method; see the module docstring for the layout contract."""

    stochastic: bool = False

    @abstractmethod
    def key(self) -> Hashable:
        """Equal keys = identical samples (the engine shares them)."""

    @abstractmethod
    def n_evals(self) -> int:
        """Kernel evaluations per image."""

    @abstractmethod
    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        """Samples of ``x`` (N,C,H,W) in image-major order, in batches of exactly ``batch_size`` rows (the last
        may be smaller)."""


class ChunkSampler(Sampler):
    """A sampler written as a stream of per-image chunks of any size (:meth:`parts`), re-batched by
    :func:`rebatch`: the simple way to add a sampler (Blur IG's path, a user's fixed noise)."""

    @abstractmethod
    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        """Samples in image-major order, in chunks of any size."""

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        return rebatch(self.parts(x, gens), batch_size)


class Identity(Sampler):
    """The clean input itself, weight 1 (vanilla gradient, Gradient × Input)."""

    def key(self) -> Hashable:
        return ("identity",)

    def n_evals(self) -> int:
        return 1

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        ones = torch.ones(min(batch_size, x.shape[0]), device=x.device, dtype=x.dtype)
        return blocked(
            x.shape[0],
            batch_size,
            lambda lo, hi: SampleBatch(x[lo:hi], torch.arange(lo, hi, device=x.device), ones[: hi - lo]),
        )


class Gaussian(Sampler):
    """``x̃_i = x + ε_i``, ``ε_i ~ N(0, σ²)``, i = 1..n (SmoothGrad, Smilkov et al. 2017; docs/methods.md).

    Args:
        n_samples: noisy copies per image.
        sigma: noise scale; with ``sigma_mode="relative"`` a fraction of each image's own (max − min) over all
            channels (docs/conventions.md#notation: BAM/GAG use 0.15), with ``"absolute"`` a standard deviation in model units
            (SmoothTaylor's 0.5).
        noise_space: ``"input"`` adds isotropic noise in the model's (normalised) input space; ``"pixel"`` adds it
            in [0, 1] pixel space as BAM did (σ relative to the pixel range; docs/conventions.md#preprocessing), using ``mean``/``std``.
        sigma_mode: ``"relative"`` or ``"absolute"``.
    """

    stochastic = True

    def __init__(
        self,
        n_samples: int = 25,
        sigma: float = 0.15,
        noise_space: str = "input",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        sigma_mode: str = "relative",
    ) -> None:
        n_samples = check_count("n_samples", n_samples)
        if not float(sigma) >= 0:
            raise ConfigError(f"sigma must be >= 0, got {sigma}")
        if noise_space not in ("input", "pixel"):
            raise ConfigError(f"noise_space {noise_space!r} is not 'input' or 'pixel'")
        if sigma_mode not in ("relative", "absolute"):
            raise ConfigError(f"sigma_mode {sigma_mode!r} is not 'relative' or 'absolute'")
        self.n_samples, self.sigma = int(n_samples), float(sigma)
        self.noise_space, self.sigma_mode = noise_space, sigma_mode
        self.mean, self.std = tuple(mean), tuple(std)

    def key(self) -> Hashable:
        space = (self.noise_space, self.mean, self.std) if self.noise_space == "pixel" else ("input",)
        return ("gaussian", self.n_samples, self.sigma, self.sigma_mode, space)

    def n_evals(self) -> int:
        return self.n_samples

    def scales(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image noise standard deviation (N,1,1,1) in the noise space."""
        n = x.shape[0]
        if self.sigma_mode == "absolute":
            return torch.full((n, 1, 1, 1), self.sigma, device=x.device, dtype=x.dtype)
        ref = x
        if self.noise_space == "pixel":
            m, s = channel_stats(self.mean, self.std, x)
            ref = x * s + m
        flat = ref.reshape(n, -1)
        return (self.sigma * (flat.amax(1) - flat.amin(1))).view(n, 1, 1, 1)

    def draws(self, x: torch.Tensor, gens: list[torch.Generator]) -> ImageDraws:
        """Image ``j``'s ``n_samples`` noise draws in model space, exactly as :meth:`noise` chunk by chunk."""
        scales = self.scales(x)
        pix = channel_stats(self.mean, self.std, x)[1][0] if self.noise_space == "pixel" else None

        def draw(j: int, out: torch.Tensor) -> None:
            for a, b in draw_chunks(out.shape[0]):
                out[a:b].normal_(generator=gens[j]).mul_(scales[j])
            if pix is not None:
                out.div_(pix)

        return ImageDraws(self.n_samples, tuple(x.shape[1:]), x, draw)

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        n = self.n_samples
        noise = self.draws(x, gens)
        weight = torch.full((min(batch_size, x.shape[0] * n),), 1.0 / n, device=x.device, dtype=x.dtype)

        fmt = layout_of(x[:1] + torch.zeros_like(x[:1], memory_format=torch.contiguous_format))

        def make(lo: int, hi: int) -> SampleBatch:
            img = torch.arange(lo, hi, device=x.device) // n
            eps = noise.rows(lo, hi)
            inputs = (gather_rows(x, img, lo, hi, n) + eps).contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weight[: hi - lo], offset=eps.neg_())

        return blocked(x.shape[0] * n, batch_size, make)


class StraightPath(Sampler):
    """Points ``x' + α (x − x')`` on the straight path from a baseline (Integrated Gradients; docs/methods.md).

    Args:
        n_steps: points on the path (= gradient evaluations per image).
        baseline: ``"black"`` (pixel 0, BAM), ``"mean"`` (0 in model space), a number or a tensor.
        rule: quadrature rule, one of :data:`PATH_RULES`; ``bam_linspace`` reproduces BAM.
        mean, std: the model's input normalisation (to place ``"black"``).
    """

    def __init__(
        self,
        n_steps: int = 25,
        baseline: str | float | torch.Tensor = "black",
        rule: str = "trapezoid",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        n_steps = check_count("n_steps", n_steps)
        self.alphas, self.weights = path_points(n_steps, rule)
        self.n_steps, self.rule, self.baseline = int(n_steps), rule, baseline
        self.mean, self.std = tuple(mean), tuple(std)
        if isinstance(baseline, str) and baseline not in ("black", "mean"):
            raise ConfigError(f"baseline {baseline!r} is not 'black', 'mean', a number or a tensor")

    def key(self) -> Hashable:
        norm = (self.mean, self.std) if self.baseline == "black" else ()
        return ("straight_path", self.n_steps, self.rule, baseline_key(self.baseline), norm)

    def n_evals(self) -> int:
        return self.n_steps

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        m = self.n_steps
        base = resolve_baseline(self.baseline, x, self.mean, self.std)
        diff = x - base
        alphas = torch.as_tensor(self.alphas, device=x.device, dtype=x.dtype)
        weights = torch.as_tensor(self.weights, device=x.device, dtype=x.dtype)
        fmt = layout_of(base[:1] + alphas[:1].view(-1, 1, 1, 1) * (x[:1] - base[:1]))

        def make(lo: int, hi: int) -> SampleBatch:
            r = torch.arange(lo, hi, device=x.device)
            img, step = r // m, r % m
            d = gather_rows(diff, img, lo, hi, m)
            inputs = gather_rows(base, img, lo, hi, m) + alphas[step].view(-1, 1, 1, 1) * d
            inputs = inputs.contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weights[step], d)

        return blocked(x.shape[0] * m, batch_size, make)


class NoisyPath(Sampler):
    """IG-SmoothGrad: ``n_samples`` noisy copies ``x + ε_k`` (as :class:`Gaussian`), each integrated along a
    :class:`StraightPath` from the fixed baseline (BAM App. E: 25 × 25 = 625 gradients per image; docs/methods.md)."""

    stochastic = True

    def __init__(
        self,
        n_samples: int = 25,
        sigma: float = 0.15,
        n_steps: int = 25,
        baseline: str | float | torch.Tensor = "black",
        rule: str = "trapezoid",
        noise_space: str = "input",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        sigma_mode: str = "relative",
    ) -> None:
        self.noise = Gaussian(n_samples, sigma, noise_space, mean, std, sigma_mode)
        self.path = StraightPath(n_steps, baseline, rule, mean, std)

    def key(self) -> Hashable:
        return ("noisy_path", self.noise.key(), self.path.key())

    def n_evals(self) -> int:
        return self.noise.n_samples * self.path.n_steps

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        n, m = self.noise.n_samples, self.path.n_steps
        base = resolve_baseline(self.path.baseline, x, self.path.mean, self.path.std)
        alphas = torch.as_tensor(self.path.alphas, device=x.device, dtype=x.dtype)
        weights = torch.as_tensor(self.path.weights, device=x.device, dtype=x.dtype)
        noise = self.noise.draws(x, gens)
        zero = torch.zeros_like(x[:1], memory_format=torch.contiguous_format)
        fmt = layout_of(base[:1] + alphas[:1].view(-1, 1, 1, 1) * ((x[:1] + zero) - base[:1]))

        def make(lo: int, hi: int) -> SampleBatch:
            r = torch.arange(lo, hi, device=x.device)
            img, copy, step = r // (n * m), (r // m) % n, r % m
            c0, c1 = (
                lo // m,
                (hi - 1) // m + 1,
            )  # the noisy copies (global index image·n + copy) in this batch
            cimg = torch.arange(c0, c1, device=x.device) // n
            cbase = gather_rows(base, cimg, c0, c1, n)
            diff = (gather_rows(x, cimg, c0, c1, n) + noise.rows(c0, c1)) - cbase  # end − baseline per copy
            local = r // m - c0
            d = diff.index_select(0, local)
            inputs = cbase.index_select(0, local) + alphas[step].view(-1, 1, 1, 1) * d
            inputs = inputs.contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weights[step], d, copy, m, n)

        return blocked(x.shape[0] * n * m, batch_size, make)


class BernoulliDrop(Sampler):
    """Feature suppression: ``x̃ = b ⊙ x + (1 − b) ⊙ fill``, ``b ~ Bernoulli(1 − drop_p)`` (Luo et al. 2025
    eq. 11; docs/methods.md).

    Args:
        n_samples: masked copies per image (the paper's 50 iterations).
        drop_p: probability that a feature is dropped (paper 0.7).
        per: ``"pixel"`` (one draw per spatial location, shared by the channels) or ``"element"``.
        fill: value of dropped features: ``"black"`` (pixel 0), ``"mean"`` (0 in model space) or a number.
    """

    stochastic = True

    def __init__(
        self,
        n_samples: int = 50,
        drop_p: float = 0.7,
        per: str = "pixel",
        fill: str | float = "black",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        n_samples = check_count("n_samples", n_samples)
        if not 0.0 <= float(drop_p) <= 1.0:
            raise ConfigError(f"drop_p must be in [0, 1], got {drop_p}")
        if per not in ("pixel", "element"):
            raise ConfigError(f"per {per!r} is not 'pixel' or 'element'")
        if isinstance(fill, str) and fill not in ("black", "mean"):
            raise ConfigError(f"fill {fill!r} is not 'black', 'mean' or a number")
        self.n_samples, self.drop_p, self.per, self.fill = int(n_samples), float(drop_p), per, fill
        self.mean, self.std = tuple(mean), tuple(std)

    def key(self) -> Hashable:
        norm = (self.mean, self.std) if self.fill == "black" else ()
        return ("bernoulli_drop", self.n_samples, self.drop_p, self.per, self.fill, norm)

    def n_evals(self) -> int:
        return self.n_samples

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        n = self.n_samples
        fill = resolve_baseline(self.fill, x[:1], self.mean, self.std)
        c, h, w = x.shape[1:]
        shape = (1, h, w) if self.per == "pixel" else (c, h, w)

        def draw(j: int, out: torch.Tensor) -> None:
            for a, b in draw_chunks(out.shape[0]):
                out[a:b].uniform_(generator=gens[j])

        u = ImageDraws(n, shape, x, draw)
        weight = torch.full((min(batch_size, x.shape[0] * n),), 1.0 / n, device=x.device, dtype=x.dtype)
        fmt = layout_of(torch.where(torch.zeros((1, *shape), dtype=torch.bool, device=x.device), x[:1], fill))

        def make(lo: int, hi: int) -> SampleBatch:
            img = torch.arange(lo, hi, device=x.device) // n
            xi = gather_rows(x, img, lo, hi, n)
            xt = torch.where(u.rows(lo, hi) >= self.drop_p, xi, fill).contiguous(memory_format=fmt)
            return SampleBatch(xt, img, weight[: hi - lo], offset=xi - xt)

        return blocked(x.shape[0] * n, batch_size, make)
