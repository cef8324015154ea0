"""The input-gradient kernel every plain gradient method evaluates on its sampler's inputs (docs/conventions.md#target-class)."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator

import torch
from torch import nn

from bamkit.attribution.base import ExecOptions, Kernel, KernelFn
from bamkit.attribution.forward import forward_context, pad_batch
from bamkit.errors import ConfigError


class InputGradient(Kernel):
    """``∂ f_target(x) / ∂ x`` for a batch (B,C,H,W) -> (B,C,H,W), float32 (docs/conventions.md#target-class: the raw logit).

    One forward and one backward per batch; bf16 autocast keeps the input and its gradient in float32.
    """

    def key(self) -> Hashable:
        return ("input_gradient",)

    @contextlib.contextmanager
    def bind(self, model: nn.Module, opts: ExecOptions) -> Iterator[KernelFn]:
        with forward_context(model, opts, self.key()) as forward:

            def fn(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                n = x.shape[0]
                if opts.compile:
                    x, target, n = pad_batch(x, target, opts.batch_size)
                with torch.enable_grad():
                    x = x.detach().requires_grad_(True)
                    logits = forward(x)
                    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                        raise ConfigError(
                            f"the model must return logits (B, classes); got {tuple(logits.shape)} "
                            f"for inputs {tuple(x.shape)}"
                        )
                    (g,) = torch.autograd.grad(logits.float().gather(1, target[:, None]).sum(), x)
                return g[:n]

            yield fn
