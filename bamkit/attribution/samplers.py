"""Samplers: the modified inputs x̃ a gradient method evaluates its kernel on (SPEC §2.0).

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

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bamkit.errors import ConfigError
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

#: Random draws per image are made this many samples at a time, whatever the batch size (reproducibility).
DRAW_CHUNK = 32

#: Quadrature rules of :class:`StraightPath` (SPEC §2.7).
PATH_RULES = ("trapezoid", "left", "right", "middle", "bam_linspace", "gausslegendre")


@dataclass
class SampleBatch:
    """One batch of modified inputs.

    Attributes:
        inputs: (B,C,H,W) the modified inputs x̃ the kernel is evaluated on.
        image_index: (B,) long, the row of ``x`` each sample belongs to (non-decreasing).
        weight: (B,) quadrature weight (``1/n`` for Monte Carlo averages, 1 for a single sample).
        offset: (B,C,H,W) or None; ``x − x̃`` (SmoothTaylor) or ``x̃_end − baseline`` (IG paths).
        copy_index: (B,) long or None; for nested samplers (IG-SmoothGrad) which noisy copy of the image.
        copy_size: samples per copy (path points) for nested samplers, else 0.
        n_copies: copies per image for nested samplers, else 0.
    """

    inputs: torch.Tensor
    image_index: torch.Tensor
    weight: torch.Tensor
    offset: torch.Tensor | None = None
    copy_index: torch.Tensor | None = None
    copy_size: int = 0
    n_copies: int = 0

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _stats(
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
    """The baseline x' in model space, broadcast to ``x`` (N,C,H,W) (SPEC §1.1).

    ``"black"`` is pixel value 0 mapped through the normalisation (BAM's IG baseline); ``"mean"`` is 0 in model
    space (the ImageNet-mean gray that Guided IG and Park use); a number is a constant in model space; a tensor
    (C,H,W), (1,C,H,W) or (N,C,H,W) is used as given.
    """
    if isinstance(baseline, str):
        if baseline == "black":
            m, s = _stats(mean, std, x)
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
    """Positions α ∈ [0, 1] and weights of an ``n_steps``-point rule for ∫_0^1 g(α) dα (SPEC §2.7).

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
    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        """Samples in image-major order, in chunks of any size (re-batched by :meth:`batches`)."""

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        """Samples of ``x`` (N,C,H,W) in batches of exactly ``batch_size`` rows (the last may be smaller)."""
        return rebatch(self.parts(x, gens), batch_size)


def blocked(total: int, batch_size: int, make: Callable[[int, int], SampleBatch]) -> Iterator[SampleBatch]:
    """``make(lo, hi)`` for consecutive global sample ranges of ``batch_size`` rows (the last may be smaller).

    The vectorised path of the built-in samplers: a batch is built in a few tensor operations from index
    arithmetic over its sample range instead of concatenating per-image chunks (for small models the chunk
    shuffling cost more than the forward + backward). Batch boundaries are those of :func:`rebatch`.
    """
    for lo in range(0, total, batch_size):
        yield make(lo, min(total, lo + batch_size))


class _ImageDraws:
    """Per-image random blocks ``draw(j, out)`` (out: (per_image, ...)) served for global row ranges.

    Image ``j``'s block is drawn exactly once, with its own generator and in :data:`DRAW_CHUNK` pieces (the
    reproducibility contract), straight into the batch when the image lies inside it. Requested ranges never go
    backwards, but the next one may start inside the last image of this one (a batch boundary inside an image,
    or inside one noisy copy's path), so that image is drawn into a side buffer and kept (one image's worth).
    """

    def __init__(
        self, per_image: int, shape: tuple[int, ...], like: torch.Tensor, draw: Callable, dtype=None
    ) -> None:
        self.per_image, self.shape, self.draw = per_image, shape, draw
        self.kw = {"device": like.device, "dtype": dtype or like.dtype}
        self.pending: tuple[int, torch.Tensor] | None = None

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """The draws of global rows ``lo..hi-1`` (image-major), shape (hi − lo, *shape)."""
        n = self.per_image
        out = torch.empty((hi - lo, *self.shape), **self.kw)
        last = (hi - 1) // n
        for j in range(lo // n, last + 1):
            a, b = max(lo, j * n), min(hi, (j + 1) * n)
            if self.pending is not None and self.pending[0] == j:
                block = self.pending[1]
            elif j < last and a == j * n:  # whole image inside, never asked for again: draw in place
                self.draw(j, out[a - lo : b - lo])
                continue
            else:
                block = torch.empty((n, *self.shape), **self.kw)
                self.draw(j, block)
            out[a - lo : b - lo] = block[a - j * n : b - j * n]
            if j == last:  # the next range may start inside this image (ranges are non-decreasing)
                self.pending = (j, block)
        return out


def _gather(t: torch.Tensor, idx: torch.Tensor, lo: int, hi: int, per: int) -> torch.Tensor:
    """``t[idx]`` for image indices ``idx`` of rows lo..hi-1 (a plain view when one image covers them all)."""
    if t.shape[0] == 1:
        return t.expand(hi - lo, *t.shape[1:])
    j0, j1 = lo // per, (hi - 1) // per
    if j0 == j1:
        return t[j0 : j0 + 1].expand(hi - lo, *t.shape[1:])
    return t.index_select(0, idx)


def _layout_of(probe: torch.Tensor) -> torch.memory_format:
    """The memory format of ``probe``: batches are laid out as the per-image chunks of :meth:`Sampler.parts`
    were (e.g. channels_last when the preprocessed inputs are), which the convolutions' speed and exact
    numerics depend on."""
    if not probe.is_contiguous() and probe.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def rebatch(parts: Iterator[SampleBatch], batch_size: int) -> Iterator[SampleBatch]:
    """Concatenate/split a stream of sample chunks into batches of ``batch_size`` rows, keeping order."""
    pending: list[SampleBatch] = []
    count = 0
    for part in parts:
        start, total = 0, len(part)
        while start < total:
            take = min(batch_size - count, total - start)
            pending.append(part if take == total else _slice(part, start, start + take))
            start += take
            count += take
            if count == batch_size:
                yield _cat(pending)
                pending, count = [], 0
    if pending:
        yield _cat(pending)


def _slice(b: SampleBatch, i: int, j: int) -> SampleBatch:
    def s(t):
        return None if t is None else t[i:j]

    return SampleBatch(
        b.inputs[i:j],
        b.image_index[i:j],
        b.weight[i:j],
        s(b.offset),
        s(b.copy_index),
        b.copy_size,
        b.n_copies,
    )


def _cat(parts: list[SampleBatch]) -> SampleBatch:
    if len(parts) == 1:
        return parts[0]

    def c(name):
        ts = [getattr(p, name) for p in parts]
        return None if ts[0] is None else torch.cat(ts)

    return SampleBatch(
        c("inputs"),
        c("image_index"),
        c("weight"),
        c("offset"),
        c("copy_index"),
        parts[0].copy_size,
        parts[0].n_copies,
    )


def _index(j: int, k: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((k,), j, dtype=torch.long, device=x.device)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, DRAW_CHUNK):
        yield start, min(n, start + DRAW_CHUNK)


class Identity(Sampler):
    """The clean input itself, weight 1 (vanilla gradient, Gradient × Input)."""

    def key(self) -> Hashable:
        return ("identity",)

    def n_evals(self) -> int:
        return 1

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        n = x.shape[0]
        yield SampleBatch(x, torch.arange(n, device=x.device), torch.ones(n, device=x.device, dtype=x.dtype))

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        ones = torch.ones(min(batch_size, x.shape[0]), device=x.device, dtype=x.dtype)
        return blocked(
            x.shape[0],
            batch_size,
            lambda lo, hi: SampleBatch(x[lo:hi], torch.arange(lo, hi, device=x.device), ones[: hi - lo]),
        )


class Gaussian(Sampler):
    """``x̃_i = x + ε_i``, ``ε_i ~ N(0, σ²)``, i = 1..n (SmoothGrad, Smilkov et al. 2017; SPEC §2.3).

    Args:
        n_samples: noisy copies per image.
        sigma: noise scale; with ``sigma_mode="relative"`` a fraction of each image's own (max − min) over all
            channels (SPEC §0.3: BAM/GAG use 0.15), with ``"absolute"`` a standard deviation in model units
            (SmoothTaylor's 0.5).
        noise_space: ``"input"`` adds isotropic noise in the model's (normalised) input space; ``"pixel"`` adds it
            in [0, 1] pixel space as BAM did (σ relative to the pixel range; SPEC §1.1), using ``mean``/``std``.
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
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
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
            m, s = _stats(self.mean, self.std, x)
            ref = x * s + m
        flat = ref.reshape(n, -1)
        return (self.sigma * (flat.amax(1) - flat.amin(1))).view(n, 1, 1, 1)

    def noise(
        self, x: torch.Tensor, j: int, k: int, gen: torch.Generator, scale: torch.Tensor
    ) -> torch.Tensor:
        """``k`` noise draws (k,C,H,W) in model space for image ``j``."""
        eps = torch.randn((k, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype) * scale
        if self.noise_space == "pixel":
            _, s = _stats(self.mean, self.std, x)
            eps = eps / s
        return eps

    def draws(self, x: torch.Tensor, gens: list[torch.Generator]) -> _ImageDraws:
        """Image ``j``'s ``n_samples`` noise draws in model space, exactly as :meth:`noise` chunk by chunk."""
        scales = self.scales(x)
        pix = _stats(self.mean, self.std, x)[1][0] if self.noise_space == "pixel" else None

        def draw(j: int, out: torch.Tensor) -> None:
            for a, b in _chunks(out.shape[0]):
                out[a:b].normal_(generator=gens[j]).mul_(scales[j])
            if pix is not None:
                out.div_(pix)

        return _ImageDraws(self.n_samples, tuple(x.shape[1:]), x, draw)

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        n = self.n_samples
        noise = self.draws(x, gens)
        weight = torch.full((min(batch_size, x.shape[0] * n),), 1.0 / n, device=x.device, dtype=x.dtype)

        fmt = _layout_of(x[:1] + torch.zeros_like(x[:1], memory_format=torch.contiguous_format))

        def make(lo: int, hi: int) -> SampleBatch:
            img = torch.arange(lo, hi, device=x.device) // n
            eps = noise.rows(lo, hi)
            inputs = (_gather(x, img, lo, hi, n) + eps).contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weight[: hi - lo], offset=eps.neg_())

        return blocked(x.shape[0] * n, batch_size, make)

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        scales = self.scales(x)
        w = 1.0 / self.n_samples
        for j in range(x.shape[0]):
            for a, b in _chunks(self.n_samples):
                eps = self.noise(x, j, b - a, gens[j], scales[j])
                yield SampleBatch(
                    x[j : j + 1] + eps,
                    _index(j, b - a, x),
                    torch.full((b - a,), w, device=x.device, dtype=x.dtype),
                    offset=-eps,
                )


class StraightPath(Sampler):
    """Points ``x' + α (x − x')`` on the straight path from a baseline (Integrated Gradients; SPEC §2.7).

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
        self.alphas, self.weights = path_points(int(n_steps), rule)
        self.n_steps, self.rule, self.baseline = int(n_steps), rule, baseline
        self.mean, self.std = tuple(mean), tuple(std)
        if isinstance(baseline, str) and baseline not in ("black", "mean"):
            raise ConfigError(f"baseline {baseline!r} is not 'black', 'mean', a number or a tensor")

    def key(self) -> Hashable:
        norm = (self.mean, self.std) if self.baseline == "black" else ()
        return ("straight_path", self.n_steps, self.rule, baseline_key(self.baseline), norm)

    def n_evals(self) -> int:
        return self.n_steps

    def path(
        self, end: torch.Tensor, base: torch.Tensor, j: int, copy: int | None = None
    ) -> Iterator[SampleBatch]:
        """Path samples from ``base`` (1,C,H,W) to ``end`` (1,C,H,W) for image ``j``."""
        alphas = torch.as_tensor(self.alphas, device=end.device, dtype=end.dtype)
        weights = torch.as_tensor(self.weights, device=end.device, dtype=end.dtype)
        diff = end - base
        for a, b in _chunks(self.n_steps):
            al = alphas[a:b].view(-1, 1, 1, 1)
            k = b - a
            ci = None if copy is None else torch.full((k,), copy, dtype=torch.long, device=end.device)
            yield SampleBatch(
                base + al * diff, _index(j, k, end), weights[a:b], diff.expand(k, *diff.shape[1:]), ci
            )

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        base = resolve_baseline(self.baseline, x, self.mean, self.std)
        for j in range(x.shape[0]):
            yield from self.path(x[j : j + 1], base[j : j + 1], j)

    def batches(self, x: torch.Tensor, gens: list[torch.Generator], batch_size: int) -> Iterator[SampleBatch]:
        m = self.n_steps
        base = resolve_baseline(self.baseline, x, self.mean, self.std)
        diff = x - base
        alphas = torch.as_tensor(self.alphas, device=x.device, dtype=x.dtype)
        weights = torch.as_tensor(self.weights, device=x.device, dtype=x.dtype)
        fmt = _layout_of(base[:1] + alphas[:1].view(-1, 1, 1, 1) * (x[:1] - base[:1]))

        def make(lo: int, hi: int) -> SampleBatch:
            r = torch.arange(lo, hi, device=x.device)
            img, step = r // m, r % m
            d = _gather(diff, img, lo, hi, m)
            inputs = _gather(base, img, lo, hi, m) + alphas[step].view(-1, 1, 1, 1) * d
            inputs = inputs.contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weights[step], d)

        return blocked(x.shape[0] * m, batch_size, make)


class NoisyPath(Sampler):
    """IG-SmoothGrad: ``n_samples`` noisy copies ``x + ε_k`` (as :class:`Gaussian`), each integrated along a
    :class:`StraightPath` from the fixed baseline (BAM App. E: 25 × 25 = 625 gradients per image; SPEC §2.7)."""

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
        fmt = _layout_of(base[:1] + alphas[:1].view(-1, 1, 1, 1) * ((x[:1] + zero) - base[:1]))

        def make(lo: int, hi: int) -> SampleBatch:
            r = torch.arange(lo, hi, device=x.device)
            img, copy, step = r // (n * m), (r // m) % n, r % m
            c0, c1 = (
                lo // m,
                (hi - 1) // m + 1,
            )  # the noisy copies (global index image·n + copy) in this batch
            cimg = torch.arange(c0, c1, device=x.device) // n
            cbase = _gather(base, cimg, c0, c1, n)
            diff = (_gather(x, cimg, c0, c1, n) + noise.rows(c0, c1)) - cbase  # end − baseline per copy
            local = r // m - c0
            d = diff.index_select(0, local)
            inputs = cbase.index_select(0, local) + alphas[step].view(-1, 1, 1, 1) * d
            inputs = inputs.contiguous(memory_format=fmt)
            return SampleBatch(inputs, img, weights[step], d, copy, m, n)

        return blocked(x.shape[0] * n * m, batch_size, make)

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        scales = self.noise.scales(x)
        base = resolve_baseline(self.path.baseline, x, self.path.mean, self.path.std)
        n, m = self.noise.n_samples, self.path.n_steps
        for j in range(x.shape[0]):
            for a, b in _chunks(n):
                eps = self.noise.noise(x, j, b - a, gens[j], scales[j])
                for k in range(b - a):
                    for part in self.path.path(x[j : j + 1] + eps[k : k + 1], base[j : j + 1], j, a + k):
                        part.copy_size, part.n_copies = m, n
                        yield part


class BernoulliDrop(Sampler):
    """Feature suppression: ``x̃ = b ⊙ x + (1 − b) ⊙ fill``, ``b ~ Bernoulli(1 − drop_p)`` (Luo et al. 2025
    eq. 11; SPEC §2.11).

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
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
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
            for a, b in _chunks(out.shape[0]):
                out[a:b].uniform_(generator=gens[j])

        u = _ImageDraws(n, shape, x, draw)
        weight = torch.full((min(batch_size, x.shape[0] * n),), 1.0 / n, device=x.device, dtype=x.dtype)
        fmt = _layout_of(
            torch.where(torch.zeros((1, *shape), dtype=torch.bool, device=x.device), x[:1], fill)
        )

        def make(lo: int, hi: int) -> SampleBatch:
            img = torch.arange(lo, hi, device=x.device) // n
            xi = _gather(x, img, lo, hi, n)
            xt = torch.where(u.rows(lo, hi) >= self.drop_p, xi, fill).contiguous(memory_format=fmt)
            return SampleBatch(xt, img, weight[: hi - lo], offset=xi - xt)

        return blocked(x.shape[0] * n, batch_size, make)

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[SampleBatch]:
        fill = resolve_baseline(self.fill, x[:1], self.mean, self.std)
        c, h, w = x.shape[1:]
        shape = (1, h, w) if self.per == "pixel" else (c, h, w)
        wt = 1.0 / self.n_samples
        for j in range(x.shape[0]):
            for a, b in _chunks(self.n_samples):
                k = b - a
                keep = (
                    torch.rand((k, *shape), generator=gens[j], device=x.device, dtype=x.dtype) >= self.drop_p
                )
                xt = torch.where(keep, x[j : j + 1], fill)
                yield SampleBatch(
                    xt,
                    _index(j, k, x),
                    torch.full((k,), wt, device=x.device, dtype=x.dtype),
                    offset=x[j : j + 1] - xt,
                )
