"""Guided Backpropagation (Springenberg et al. 2015) and its squared SmoothGrad (BAM's "GB-SG").

Guided Backpropagation replaces the backward pass of every ReLU by
``grad_in = grad_out · 1[relu(x) > 0] · 1[grad_out > 0]`` (docs/methods.md; PAIR saliency 0.0.5 ``guided_backprop.py``
overrides the gradient of every ``Relu`` op the same way).

Why not module backward hooks: torchvision's ``BasicBlock``/``Bottleneck`` call one in-place ``self.relu`` module
several times per forward (docs/methods.md), and models may call ``F.relu`` directly. Instead, for the duration
of one forward pass, a :class:`torch.overrides.TorchFunctionMode` routes every ReLU call — ``nn.ReLU``,
``F.relu``, ``torch.relu`` and ``Tensor.relu``, in-place or not — to the :class:`GuidedReLU` autograd function,
and every ReLU6 (``nn.ReLU6``, ``F.relu6``, and ``F.hardtanh`` with bounds (0, 6): MobileNet/EfficientNet-Lite's
rectifier) to :class:`GuidedReLU6`, the same rule restricted to the unit's linear range.
Nothing is attached to the model, so nothing can be left behind after an exception. Limits: in-place calls are
answered out of place (callers must use the returned tensor, as ``nn.ReLU`` and torchvision do), and other
rectifiers (``clamp(min=0)``, ``threshold``) keep their ordinary gradient.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import ExecOptions, Kernel, KernelFn, functional, hyper_parameters, register
from bamkit.attribution.engine import SampledMethod
from bamkit.attribution.forward import forward_context
from bamkit.attribution.smoothing import NOISE, Smoothed
from bamkit.errors import ConfigError

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


class GuidedReLU6(torch.autograd.Function):
    """ReLU6 = clamp(x, 0, 6) whose backward passes positive gradients only where the unit is linear (0 < x < 6):
    the guided rule of :class:`GuidedReLU` applied to the rectifier's own gradient mask."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = x.clamp(0, 6)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_out * ((x > 0) & (x < 6) & (grad_out > 0)).to(grad_out.dtype)


_RELU_FUNCS = {F.relu, torch.relu, torch.Tensor.relu, F.relu_, torch.relu_, torch.Tensor.relu_}
_RELU6_FUNCS = {F.relu6, torch._C._nn.relu6, torch._C._nn.relu6_}


def _is_relu6(func: Callable, args: tuple, kwargs: dict) -> bool:
    if func in _RELU6_FUNCS:
        return True
    if func is F.hardtanh:  # nn.ReLU6 calls F.hardtanh(x, 0., 6., inplace)
        lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
        hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
        return lo == 0.0 and hi == 6.0
    return False


class _GuidedReLUMode(TorchFunctionMode):
    """Routes every ReLU call made while active to :class:`GuidedReLU` (out of place: callers use the result)."""

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _RELU_FUNCS:
            return GuidedReLU.apply(args[0])
        if _is_relu6(func, args, kwargs):
            return GuidedReLU6.apply(args[0])
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
    """Guided Backpropagation: the target-logit gradient with guided ReLU backward passes (docs/methods.md).

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


@register("guided_backprop_smoothgrad", paper=BAM_PAPER + "; Smilkov et al. 2017, SmoothGrad")
@hyper_parameters(n_samples=25, sigma=0.15, magnitude=True, **NOISE)
class GuidedBackpropSmoothGrad(Smoothed):
    """BAM's GB-SG: SmoothGrad of guided backprop, squared by default (PAIR 0.0.5 ``magnitude=True``; docs/methods.md).

    ``a = (1/n) Σ_i GB(x + ε_i)²`` (``magnitude=False``: the plain mean), ε_i ~ N(0, σ²), σ = ``sigma`` × the
    image's (max − min).

    Args:
        n_samples: noisy copies (BAM 25). sigma: noise fraction (BAM 0.15). magnitude: square each sample.
        noise_space: ``"input"`` (model space) or ``"pixel"``. mean, std: the model's input normalisation.
    """

    output = "input"

    def kernel(self) -> Kernel:
        return GuidedBackpropKernel()


guided_backprop = functional(GuidedBackprop)


guided_backprop_smoothgrad = functional(GuidedBackpropSmoothGrad)
