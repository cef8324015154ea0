"""Layer-wise Relevance Propagation (Bach et al. 2015) through zennit (a bamkit addition, docs/methods.md).

Default: zennit's ``EpsilonPlusFlat`` composite — Flat rule on the first linear layer, z⁺ on the other
convolutions, ε on fully connected layers, Pass through activations, Norm on sums and average pools — with
``ResNetCanonizer`` for torchvision ResNets (batch norm merged into the preceding convolution, the residual
addition made an explicit ``Sum`` module so the Norm rule splits relevance between the branches).
``EpsilonGammaBox`` (ZBox first layer with bounds ``normalize(0)``/``normalize(1)``, γ rule elsewhere) is the
documented alternative.

For other models the canonizer set is ``SequentialMergeBatchNorm`` (merges a BatchNorm that directly follows a
linear layer inside an ``nn.Sequential``), the part of ``ResNetCanonizer`` that applies to any architecture.
Canonizers modify the model's modules and parameters, so they are registered and removed in a ``try/finally``
around each forward/backward: the model is restored even when the forward raises (zennit docs: never save a
``state_dict`` while canonizers are applied).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bamkit.attribution.base import ExecOptions, Method, check_inputs, functional, model_guard, register
from bamkit.attribution.forward import forward_context
from bamkit.errors import ConfigError

COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_plus", "epsilon_alpha2_beta1_flat")
CANONIZERS = ("auto", "resnet", "merge_batchnorm", "none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_torchvision_resnet(model: nn.Module) -> bool:
    """Whether ``model`` contains torchvision ``BasicBlock``/``Bottleneck`` blocks (what ResNetCanonizer rewrites)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return any(isinstance(m, (BasicBlock, Bottleneck)) for m in model.modules())


def make_canonizers(model: nn.Module, which: str) -> list:
    """zennit canonizers for ``model``: ``auto`` picks ResNetCanonizer for torchvision ResNets, else BN merging."""
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer

    if which == "auto":
        which = "resnet" if is_torchvision_resnet(model) else "merge_batchnorm"
    if which == "resnet":
        return [ResNetCanonizer()]
    if which == "merge_batchnorm":
        return [SequentialMergeBatchNorm()]
    return []


def make_composite(
    name: str,
    canonizers: list,
    x: torch.Tensor,
    *,
    epsilon: float,
    gamma: float,
    mean: Sequence[float],
    std: Sequence[float],
):
    """The zennit composite ``name`` for inputs shaped like ``x`` (ZBox bounds depend on the input shape)."""
    from zennit import composites as zc

    if name == "epsilon_plus_flat":
        return zc.EpsilonPlusFlat(epsilon=epsilon, canonizers=canonizers)
    if name == "epsilon_plus":
        return zc.EpsilonPlus(epsilon=epsilon, canonizers=canonizers)
    if name == "epsilon_alpha2_beta1_flat":
        return zc.EpsilonAlpha2Beta1Flat(epsilon=epsilon, canonizers=canonizers)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    low = ((0.0 - m) / s).expand_as(x)
    high = ((1.0 - m) / s).expand_as(x)
    return zc.EpsilonGammaBox(low=low, high=high, epsilon=epsilon, gamma=gamma, canonizers=canonizers)


@register("lrp", paper="Bach et al. 2015, LRP; rules and canonizers from zennit (Anders et al. 2021)")
class LRP(Method):
    """LRP relevance (N,C,H,W) of the target logit, seeded with the one-hot target (optionally × its logit).

    Args:
        composite: one of ``epsilon_plus_flat`` (default), ``epsilon_gamma_box``, ``epsilon_plus``,
            ``epsilon_alpha2_beta1_flat`` (zennit's composites of those names).
        canonizers: ``auto`` (ResNetCanonizer for torchvision ResNets, else SequentialMergeBatchNorm),
            ``resnet``, ``merge_batchnorm`` or ``none``.
        epsilon: ε of the Epsilon rule on fully connected layers.
        gamma: γ of the Gamma rule (``epsilon_gamma_box`` only).
        scale_by_logit: seed the output relevance with the target logit instead of 1, so that for conservative
            rules the input relevances sum to the logit (maps differ only by that per-image factor).
        mean, std: the model's input normalisation; ZBox bounds are ``(0 − mean)/std`` and ``(1 − mean)/std``.
    """

    output = "input"

    def __init__(
        self,
        composite: str = "epsilon_plus_flat",
        canonizers: str = "auto",
        epsilon: float = 1e-6,
        gamma: float = 0.25,
        scale_by_logit: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if composite not in COMPOSITES:
            raise ConfigError(f"lrp: composite {composite!r} is not one of {', '.join(COMPOSITES)}")
        if canonizers not in CANONIZERS:
            raise ConfigError(f"lrp: canonizers {canonizers!r} is not one of {', '.join(CANONIZERS)}")
        if not epsilon > 0 or not gamma >= 0:
            raise ConfigError(f"lrp: need epsilon > 0 and gamma >= 0, got epsilon={epsilon}, gamma={gamma}")
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ConfigError(
                f"lrp: mean and std must have one entry per channel and std > 0, got {mean}, {std}"
            )
        self.composite, self.canonizers = composite, canonizers
        self.epsilon, self.gamma, self.scale_by_logit = float(epsilon), float(gamma), bool(scale_by_logit)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def _relevance(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        model: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        composite = make_composite(
            self.composite,
            make_canonizers(model, self.canonizers),
            x,
            epsilon=self.epsilon,
            gamma=self.gamma,
            mean=self.mean,
            std=self.std,
        )
        xg = x.detach().clone().requires_grad_(True)
        try:
            composite.register(model)
            with torch.enable_grad():
                out = forward(xg)
                seed = torch.zeros_like(out).scatter_(1, target.view(-1, 1), 1.0)
                if self.scale_by_logit:
                    seed = seed * out.detach()
                (rel,) = torch.autograd.grad(out, xg, grad_outputs=seed)
        finally:
            composite.remove()
        return rel.detach()

    def attribute(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
    ) -> torch.Tensor:
        target = check_inputs(inputs, target)
        if len(self.mean) not in (1, inputs.shape[1]) and self.composite == "epsilon_gamma_box":
            raise ConfigError(
                f"lrp: mean/std have {len(self.mean)} entries but inputs have {inputs.shape[1]} "
                f"channels; pass mean=..., std=... of the model's normalisation"
            )
        bs = opts.batch_size
        # zennit's rules run in full precision and eagerly: bf16 autocast, channels_last (a memory-format change
        # of parameters that BN-merging canonizers rewrite) and compile are not applied; "tf32" is honoured
        exact = dataclasses.replace(
            opts, precision="tf32" if opts.precision == "tf32" else "fp32", channels_last=False, compile=False
        )
        with model_guard(model), forward_context(model, exact, ("lrp",)) as forward:
            out = [
                self._relevance(forward, model, inputs[i : i + bs], target[i : i + bs])
                for i in range(0, len(inputs), bs)
            ]
        return torch.cat(out)


lrp = functional(LRP)
