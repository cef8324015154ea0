"""Blur Integrated Gradients (Xu et al. 2020, "Attribution in scale and space", CVPR).

The path runs through Gaussian-blurred copies of the input (docs/methods.md; PAIR saliency 0.2.1 ``core/blur_ig.py``):
with ``σ_i = i·σ_max/T`` (or ``sqrt(i·σ_max/T)``), i = 0..T, and ``x_i = blur(x, σ_i)``,

    a = − Σ_{i<T} (σ_{i+1} − σ_i) · ∂x/∂σ|_{σ_i} ⊙ ∇f_c(x_i),   ∂x/∂σ ≈ (blur(x, σ_i + h) − x_i) / h.

The blur acts on the two spatial axes of (C,H,W) only. It is computed exactly as ``scipy.ndimage.gaussian_filter``
(PAIR's blur) but on the device, as two matrix products ``B_H · x · B_Wᵀ``: the (n,n) matrix of one axis holds the
normalised 1-D Gaussian truncated at ``radius = int(truncate·σ + 0.5)`` and folds the out-of-range taps back
according to the padding ``mode`` (scipy's names: ``constant`` = zero padding, PAIR's choice; ``mirror`` = torch's
``reflect``, GAG's torchvision ``GaussianBlur``; ``reflect``, ``nearest``, ``wrap``). ``radius`` overrides the
truncation (GAG: kernel 41 ⇒ ``radius=20``). Zero padding in normalised space is not black (docs/methods.md).

Blur IG runs on the engine as a sampler (:class:`BlurPath`: blurred inputs, weight ``−Δσ_i``, offset ``∂x/∂σ``)
and the ``PathIntegral`` reducer, so all (image, step) pairs stream through the model in chunks of
``opts.batch_size`` and GAG's guided variants can reuse the path. The step width is taken
per step; PAIR 0.2.1 multiplies a whole batch by the width of its last step, which differs only with
``sqrt=True`` and ``batch_size > 1`` (there, PAIR with ``batch_size=1`` is the reference).

Presets (docs/methods.md): PAIR ``n_steps=100, max_sigma=50, grad_step=0.01, mode="constant"`` (bamkit's default);
GAG 2024 ``n_steps=20, radius=20, mode="mirror"``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from typing import Any

import torch

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import Kernel, functional, hyper_parameters, register
from bamkit.attribution.batching import DRAW_CHUNK
from bamkit.attribution.engine import SampledMethod
from bamkit.attribution.kernels import InputGradient
from bamkit.errors import ConfigError

MODES = ("constant", "reflect", "mirror", "nearest", "wrap")


def _fold(p: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map indices ``p`` (any integers) into [0, n) the way scipy.ndimage extends a signal (not ``constant``)."""
    if mode == "nearest":
        return p.clamp(0, n - 1)
    if mode == "wrap":
        return p.remainder(n)
    if mode == "reflect":  # d c b a | a b c d | d c b a
        q = p.remainder(2 * n)
        return torch.where(q >= n, 2 * n - 1 - q, q)
    if n == 1:  # mirror of a single sample
        return torch.zeros_like(p)
    q = p.remainder(2 * n - 2)  # mirror: d c b | a b c d | c b a
    return torch.where(q >= n, 2 * n - 2 - q, q)


def blur_matrix(
    n: int,
    sigma: float,
    mode: str = "constant",
    truncate: float = 4.0,
    radius: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(n,n) matrix ``B`` with ``B @ v`` = scipy ``gaussian_filter1d(v, sigma, mode=mode, truncate=truncate)``.

    ``sigma == 0`` gives the identity (PAIR returns the image unblurred).
    """
    if sigma == 0:
        return torch.eye(n, dtype=dtype, device=device)
    r = int(truncate * sigma + 0.5) if radius is None else int(radius)
    offsets = torch.arange(-r, r + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 / (sigma * sigma) * offsets**2)
    taps = taps / taps.sum()
    src = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]  # (n, 2r+1) source index of each tap
    weights = taps[None, :].expand(n, -1).clone()
    if mode == "constant":
        weights = torch.where((src >= 0) & (src < n), weights, torch.zeros_like(weights))
        src = src.clamp(0, n - 1)
    else:
        src = _fold(src, n, mode)
    mat = torch.zeros(n, n, dtype=torch.float64).scatter_add_(1, src, weights)
    return mat.to(dtype=dtype, device=device)


def gaussian_blur(
    x: torch.Tensor, sigma: float, mode: str = "constant", truncate: float = 4.0, radius: int | None = None
) -> torch.Tensor:
    """Blur (..., C, H, W) on the spatial axes (scipy ``gaussian_filter`` with ``sigma=[σ, σ]`` on H and W)."""
    if sigma == 0:
        return x
    bh = blur_matrix(x.shape[-2], sigma, mode, truncate, radius, x.dtype, x.device)
    bw = blur_matrix(x.shape[-1], sigma, mode, truncate, radius, x.dtype, x.device)
    return bh @ x @ bw.T


def sigma_schedule(n_steps: int, max_sigma: float, sqrt: bool = False) -> list[float]:
    """σ_0 … σ_T of the blur path (PAIR: linear, or square-root spacing)."""
    if sqrt:
        return [math.sqrt(float(i) * max_sigma / float(n_steps)) for i in range(n_steps + 1)]
    return [float(i) * max_sigma / float(n_steps) for i in range(n_steps + 1)]


class BlurPath(S.ChunkSampler):
    """Points ``x_i = blur(x, σ_i)``, i = 0..T−1, of the Blur IG path, with ``offset = ∂x/∂σ`` at σ_i and
    ``weight = −(σ_{i+1} − σ_i)``, so that the engine's ``PathIntegral`` reducer (``Σ w_i g_i ⊙ offset_i``) gives
    Blur IG. Deterministic (no randomness); samples are image-major as the engine requires.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        """``params``: the validated hyper-parameters of a :class:`BlurIG` (its ``params()``)."""
        self.params = dict(params)
        for k, v in self.params.items():
            setattr(self, k, v)
        self.sigmas = sigma_schedule(self.n_steps, self.max_sigma, self.sqrt)

    def key(self) -> Hashable:
        return ("blur_path", *self.params.items())

    def n_evals(self) -> int:
        return self.n_steps

    def _stack(self, n: int, sigmas: list[float], like: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [
                blur_matrix(n, s, self.mode, self.truncate, self.radius, like.dtype, like.device)
                for s in sigmas
            ]
        )

    def parts(self, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[S.SampleBatch]:
        h, w = x.shape[-2:]
        t_steps = self.n_steps
        width = torch.tensor(
            [self.sigmas[i + 1] - self.sigmas[i] for i in range(t_steps)], dtype=x.dtype, device=x.device
        )
        lo, hi = self.sigmas[:t_steps], [s + self.grad_step for s in self.sigmas[:t_steps]]
        # (T,n,n) blur matrices per spatial axis at σ_i and σ_i + h; built once, shared by all images
        at = {n: self._stack(n, lo, x) for n in {h, w}}
        ahead = {n: self._stack(n, hi, x) for n in {h, w}}
        for j in range(x.shape[0]):
            img = x[j]
            for a in range(0, t_steps, DRAW_CHUNK):
                b = min(t_steps, a + DRAW_CHUNK)
                x_i = at[h][a:b, None] @ img @ at[w][a:b, None].transpose(-1, -2)
                x_h = ahead[h][a:b, None] @ img @ ahead[w][a:b, None].transpose(-1, -2)
                yield S.SampleBatch(
                    x_i,
                    torch.full((b - a,), j, dtype=torch.long, device=x.device),
                    -width[a:b],
                    offset=(x_h - x_i) / self.grad_step,
                )


@register("blur_ig", paper="Xu et al. 2020, Attribution in scale and space (Blur IG, CVPR)")
@hyper_parameters(
    n_steps=100, max_sigma=50.0, grad_step=0.01, sqrt=False, mode="constant", truncate=4.0, radius=None
)
class BlurIG(SampledMethod):
    """Blur IG (docs/methods.md): (N,C,H,W) signed attributions in model space.

    Args:
        n_steps: T, blur steps (= gradient evaluations per image); PAIR 100, GAG 20.
        max_sigma: σ of the most blurred image, in pixels.
        grad_step: h of the finite-difference derivative ∂x/∂σ.
        sqrt: square-root σ spacing instead of linear.
        mode: padding of the blur (scipy names): ``constant`` (PAIR), ``mirror`` (GAG / torch reflect), ...
        truncate: kernel half-width in σ (scipy default 4.0).
        radius: fixed kernel half-width in pixels, overriding ``truncate`` (GAG: 20).
    """

    output = "input"

    def check(self) -> None:
        self.n_steps = S.check_count("blur_ig: n_steps", self.n_steps)
        if not self.max_sigma > 0 or not self.grad_step > 0 or not self.truncate > 0:
            raise ConfigError(
                f"blur_ig: max_sigma, grad_step and truncate must be > 0, got {self.max_sigma}, "
                f"{self.grad_step}, {self.truncate}"
            )
        if self.mode not in MODES:
            raise ConfigError(f"blur_ig: mode {self.mode!r} is not one of {', '.join(MODES)}")
        r = self.radius
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
            raise ConfigError(f"blur_ig: radius must be None or an integer >= 0, got {r!r}")
        self.max_sigma, self.grad_step, self.truncate = (
            float(self.max_sigma),
            float(self.grad_step),
            float(self.truncate),
        )
        self.sqrt = bool(self.sqrt)

    def kernel(self) -> Kernel:
        return InputGradient()

    def sampler(self) -> S.Sampler:
        return BlurPath(self.params())

    def reducer(self) -> R.Reducer:
        return R.PathIntegral()


blur_ig = functional(BlurIG)
