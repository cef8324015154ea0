"""Guided Backpropagation (Springenberg et al. 2015) and its squared SmoothGrad (BAM's "GB-SG").

Guided Backpropagation replaces the backward pass of every ReLU by
``grad_in = grad_out · 1[relu(x) > 0] · 1[grad_out > 0]`` (SPEC §2.12; PAIR saliency 0.0.5 ``guided_backprop.py``
overrides the gradient of every ``Relu`` op the same way).

Why not module backward hooks: torchvision's ``BasicBlock``/``Bottleneck`` call one in-place ``self.relu`` module
several times per forward (SPEC §2.12 PITFALL), and models may call ``F.relu`` directly. Instead, for the duration
of one forward pass, a :class:`torch.overrides.TorchFunctionMode` routes every ReLU call — ``nn.ReLU``,
``F.relu``, ``torch.relu`` and ``Tensor.relu``, in-place or not — to the :class:`GuidedReLU` autograd function.
Nothing is attached to the model, so nothing can be left behind after an exception. Limits: in-place calls are
answered out of place (callers must use the returned tensor, as ``nn.ReLU`` and torchvision do), and other
rectifiers (``relu6``, ``clamp(min=0)``, ``threshold``) keep their ordinary gradient.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import ExecOptions, Kernel, KernelFn, register
from bamkit.attribution.engine import SampledMethod, forward_context
from bamkit.errors import ConfigError
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

BAM_PAPER = "Yang & Kim 2019, Benchmarking Attribution Methods with Relative Feature Importance"


class GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients through positive outputs (guided backprop)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (out,) = ctx.saved_tensors
        return grad_out * ((out > 0) & (grad_out > 0)).to(grad_out.dtype)


_RELU_FUNCS = {F.relu, torch.relu, torch.Tensor.relu, F.relu_, torch.relu_, torch.Tensor.relu_}


class _GuidedReLUMode(TorchFunctionMode):
    """Routes every ReLU call made while active to :class:`GuidedReLU` (out of place: callers use the result)."""

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _RELU_FUNCS:
            return GuidedReLU.apply(args[0])
        return func(*args, **kwargs)


@contextlib.contextmanager
def guided_relus() -> Iterator[None]:
    """Within this block every ReLU in a forward pass is a :class:`GuidedReLU` (no module is modified)."""
    with _GuidedReLUMode():
        yield


def eager(opts: ExecOptions) -> ExecOptions:
    """``opts`` without ``torch.compile``: kernels that hook layers or swap ReLUs per call run eagerly."""
    return dataclasses.replace(opts, compile=False)


def target_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each row's target logit (rows are independent in eval mode), a scalar.

    Half-precision logits (bf16 autocast) are summed in float32; float64 models keep float64.
    """
    if logits.ndim != 2 or logits.shape[0] != target.shape[0]:
        raise ConfigError(
            f"the model must return logits (B, classes); got {tuple(logits.shape)} for "
            f"{target.shape[0]} inputs"
        )
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.gather(1, target.view(-1, 1)).sum()


class GuidedBackpropKernel(Kernel):
    """Per-sample guided-backprop gradient ``(B,C,H,W)`` of the target logit w.r.t. the input.

    Runs eagerly (``opts.compile`` is ignored: the ReLU routing happens at Python dispatch time); precision and
    memory format follow ``opts``.
    """

    def key(self) -> Hashable:
        return ("guided_backprop",)

    @contextlib.contextmanager
    def bind(self, model: nn.Module, opts: ExecOptions) -> Iterator[KernelFn]:
        with forward_context(model, eager(opts), self.key()) as forward:

            def fn(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                xg = x.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    with guided_relus():
                        logits = forward(xg)
                    score = target_score(logits, target)
                (grad,) = torch.autograd.grad(score, xg)
                return grad

            yield fn


@register(
    "guided_backprop", paper="Springenberg et al. 2015, Striving for simplicity: the all convolutional net"
)
class GuidedBackprop(SampledMethod):
    """Guided Backpropagation: the target-logit gradient with guided ReLU backward passes (SPEC §2.12).

    Returns:
        (N,C,H,W) attributions in the model's input space.
    """

    output = "input"

    def __init__(self) -> None:
        super().__init__()

    def kernel(self) -> Kernel:
        return GuidedBackpropKernel()

    def sampler(self) -> S.Sampler:
        return S.Identity()

    def reducer(self) -> R.Reducer:
        return R.Mean()


def gaussian_sampler(m: Any) -> S.Gaussian:
    """The SmoothGrad noise sampler of a method with ``n_samples``, ``sigma``, ``noise_space``, ``mean``, ``std``
    (and optionally ``sigma_mode``); shared by every noise-based method so equal settings give equal keys."""
    return S.Gaussian(
        m.n_samples, m.sigma, m.noise_space, m.mean, m.std, getattr(m, "sigma_mode", "relative")
    )


def set_smoothing(
    m: Any,
    n_samples: int,
    sigma: float,
    magnitude: bool,
    noise_space: str,
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """Store SmoothGrad hyper-parameters on ``m`` and validate them now (ConfigError before any model runs)."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise ConfigError(f"{m.name}: n_samples must be an integer >= 1, got {n_samples!r}")
    m.n_samples, m.sigma, m.magnitude, m.noise_space = n_samples, float(sigma), bool(magnitude), noise_space
    m.mean, m.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    gaussian_sampler(m)


@register("guided_backprop_smoothgrad", paper=BAM_PAPER + "; Smilkov et al. 2017, SmoothGrad")
class GuidedBackpropSmoothGrad(SampledMethod):
    """BAM's GB-SG: SmoothGrad of guided backprop, squared by default (PAIR 0.0.5 ``magnitude=True``; SPEC §2.12).

    ``a = (1/n) Σ_i GB(x + ε_i)²`` (``magnitude=False``: the plain mean), ε_i ~ N(0, σ²), σ = ``sigma`` × the
    image's (max − min).

    Args:
        n_samples: noisy copies (BAM 25). sigma: noise fraction (BAM 0.15). magnitude: square each sample.
        noise_space: ``"input"`` (model space) or ``"pixel"``. mean, std: the model's input normalisation.
    """

    output = "input"
    stochastic = True

    def __init__(
        self,
        n_samples: int = 25,
        sigma: float = 0.15,
        magnitude: bool = True,
        noise_space: str = "input",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        set_smoothing(self, n_samples, sigma, magnitude, noise_space, mean, std)

    def kernel(self) -> Kernel:
        return GuidedBackpropKernel()

    def sampler(self) -> S.Sampler:
        return gaussian_sampler(self)

    def reducer(self) -> R.Reducer:
        return R.MeanSquare() if self.magnitude else R.Mean()


def guided_backprop(
    model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, opts: ExecOptions = ExecOptions()
) -> torch.Tensor:
    """Functional form of :class:`GuidedBackprop`: (N,C,H,W) inputs, (N,) targets -> (N,C,H,W)."""
    return GuidedBackprop().attribute(model, inputs, target, opts=opts)


def guided_backprop_smoothgrad(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    seeds: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    opts: ExecOptions = ExecOptions(),
    **params: Any,
) -> torch.Tensor:
    """Functional form of :class:`GuidedBackpropSmoothGrad` (params: n_samples, sigma, magnitude, ...)."""
    return GuidedBackpropSmoothGrad(**params).attribute(
        model, inputs, target, generator=generator, seeds=seeds, opts=opts
    )
