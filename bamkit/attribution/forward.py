"""How the attribution engine's forward passes run: precision (fp32, TF32, bf16 autocast), memory format
(channels_last) and ``torch.compile`` with one compiled step per architecture, shared by every model of it
(:func:`forward_context`, which kernels call inside their ``bind``)."""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import itertools
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import torch
from torch import nn

from bamkit.attribution.base import ExecOptions

_COMPILED: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_MAX_COMPILED = 8
COMPILE_BACKEND: Any = "inductor"  # torch.compile's backend (tests count compilations with their own)


def clear_compile_cache() -> None:
    """Drop every compiled step (each holds the module whose code it traced)."""
    _COMPILED.clear()


def architecture_key(model: nn.Module) -> Hashable:
    """Models of one class whose parameters and buffers have the same names, shapes and dtypes (and the same
    train/eval mode) trace to the same graph: the 13 BAM models share one."""
    state = itertools.chain(model.named_parameters(), model.named_buffers())
    return (
        type(model).__module__,
        type(model).__qualname__,
        tuple((n, tuple(t.shape), t.dtype, t.device.type) for n, t in state),
        tuple(m.training for m in model.modules()),
    )


def _compiled(model: nn.Module, key: Hashable) -> Callable[[torch.Tensor], torch.Tensor]:
    """The forward of ``model`` through one ``torch.compile`` d step per architecture (and kernel key, precision,
    memory format): the step takes the weights as inputs (``torch.func.functional_call``), so every model of
    the architecture runs the graph compiled for the first, with no recompilation (LRU of a few steps).

    Dynamo specialises on input shape/dtype/device; the engine pads the last batch to ``batch_size`` so a long
    evaluation compiles once.
    """
    k = (architecture_key(model), key)
    step = _COMPILED.get(k)
    if step is None:
        # a private copy whose code is traced; every call swaps in the weights of the model at hand (tracing the
        # model's own parameters would specialise the graph to them and recompile for the next model)
        template = copy.deepcopy(model)

        def forward_with(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(template, state, (x,))

        step = torch.compile(forward_with, backend=COMPILE_BACKEND)
        _COMPILED[k] = step
    else:
        _COMPILED.move_to_end(k)
    while len(_COMPILED) > _MAX_COMPILED:
        _COMPILED.popitem(last=False)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return functools.partial(step, state)


@contextlib.contextmanager
def precision_flags(precision: str) -> Iterator[None]:
    """fp32 means IEEE fp32 (TF32 off even where PyTorch enables it for cuDNN by default); tf32 turns it on."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    on = precision == "tf32"
    try:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def _memory_format(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """Convert the model to channels_last for the call and back after (only if it was not already)."""
    weights = [p for p in model.parameters() if p.ndim == 4]
    convert = channels_last and any(not p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    try:
        if convert:
            model.to(memory_format=torch.channels_last)
        yield
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def forward_context(
    model: nn.Module, opts: ExecOptions, key: Hashable = ("forward",)
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Yield ``forward(x) -> logits`` running ``model`` as ``opts`` says (precision, memory format, compile).

    Kernels call it inside their ``bind``; everything is restored on exit. With ``opts.compile`` the forward (and
    through AOTAutograd the backward) is compiled once per (model, ``key``, precision, memory format).
    """
    with precision_flags(opts.precision), _memory_format(model, opts.channels_last):
        run = _compiled(model, (key, opts.precision, opts.channels_last)) if opts.compile else model
        bf16 = opts.precision == "bf16"

        def forward(x: torch.Tensor) -> torch.Tensor:
            if opts.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if bf16:
                with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                    return run(x)
            return run(x)

        yield forward


def pad_batch(x: torch.Tensor, target: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Pad a short last batch to ``size`` rows by repeating its last row (compiled graphs keep one shape)."""
    b = x.shape[0]
    if b >= size:
        return x, target, b
    reps = size - b
    return (
        torch.cat([x, x[-1:].expand(reps, *x.shape[1:])]),
        torch.cat([target, target[-1:].expand(reps)]),
        b,
    )
