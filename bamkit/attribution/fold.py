"""BatchNorm folded into the convolution before it, for the engine's eval-mode passes (``ExecOptions.fold_bn``).

In eval mode a BatchNorm is an affine map per channel, ``γ (z − μ) / √(σ² + ε) + β``; applied to a
convolution's output ``z = W * x`` it equals one convolution with weights ``W γ / √(σ² + ε)`` and bias
``β − μ γ / √(σ² + ε)`` (Ioffe & Szegedy 2015, §3.1: at inference the normalisation, with its scale and shift, is
one fixed linear transform per channel; zennit's ``SequentialMergeBatchNorm`` canonizer, Anders et al. 2021, merges
it the same way before LRP).
The network's function, its input gradients and every activation after the pair are the same up to float
rounding, while each pass skips one read and write of every normalised activation: the demo suite's passes on its
EfficientNet-Lite0 f_s at 80 px were 1.16-1.48x faster (median 1.22x) on 2 CPU cores (``bench/fold_bn.py``).

Rounding is not nothing: where a unit sits at a ReLU6 kink (0 or 6) a last-bit difference can flip whether its
gradient passes, so maps are not bitwise the same. An evaluation that folds records the maps' rank fidelity
against the unfolded fp32 ones (:mod:`bamkit.evaluate.execution`) and caches them under their own key.

Pairs are found by running the model once on a probe batch (a convolution whose output tensor is the input of a
BatchNorm, each called once), so any architecture works, torchvision's ResNets (``conv1``/``bn1``
attributes) as well as Sequential blocks; the folded copy's logits are then checked against the original's on the
probe, and a difference beyond rounding (a convolution's output also used elsewhere) is an error, never a silently
different network. The folded copy keeps every module name (an ``nn.Identity`` stands where each BatchNorm was), so
hooks by name (GradCAM's layer, TCAV's bottlenecks) see the same activations, except on a folded convolution
itself, whose output is now the normalised one.
"""

from __future__ import annotations

import collections
import copy
import weakref
from collections.abc import Hashable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bamkit.errors import ConfigError

# Logits of the folded copy may differ from the original's by float rounding only: this much of their scale.
LOGIT_RTOL = 1e-4
_MAX_CACHED = 4  # folded copies kept (the evaluation visits one model after another)
_CACHE: collections.OrderedDict[int, tuple[weakref.ref, Hashable, nn.Module]] = collections.OrderedDict()


def clear_cache() -> None:
    """Drop every folded copy."""
    _CACHE.clear()


def conv_bn_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution name, BatchNorm name) pairs where the BatchNorm's input is the convolution's output, found by
    one forward pass of ``probe`` (both modules called once; 2-D convolutions and BatchNorms only)."""
    names = {m: n for n, m in model.named_modules()}
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # id(output tensor) -> conv name (tensor kept alive)
    calls: collections.Counter[str] = collections.Counter()
    pairs: list[tuple[str, str]] = []

    def after_conv(mod, _inp, out):
        calls[names[mod]] += 1
        outputs[id(out)] = (names[mod], out)

    def before_bn(mod, inp):
        calls[names[mod]] += 1
        hit = outputs.get(id(inp[0]))
        if hit is not None and hit[1] is inp[0]:
            pairs.append((hit[0], names[mod]))

    handles = []
    for m in model.modules():
        if type(m) is nn.BatchNorm2d and m.track_running_stats and m.running_mean is not None:
            handles.append(m.register_forward_pre_hook(before_bn))
        elif isinstance(m, nn.Conv2d) and m.padding_mode == "zeros":
            handles.append(m.register_forward_hook(after_conv))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1]


def fold_batchnorm(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """An eval-mode copy of ``model`` with every (convolution, BatchNorm) pair of :func:`conv_bn_pairs` fused.

    Raises:
        ConfigError: the copy's logits on ``probe`` differ from the original's beyond rounding.
    """
    was_training = model.training
    model.eval()
    try:
        pairs = conv_bn_pairs(model, probe)
        folded = copy.deepcopy(model)
        for conv_name, bn_name in pairs:
            conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
            fused = fuse_conv_bn_eval(conv, bn)
            # keep the memory layout the model runs in
            if conv.weight.is_contiguous(memory_format=torch.channels_last):
                fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
            folded.set_submodule(conv_name, fused)
            folded.set_submodule(bn_name, nn.Identity())
        folded.requires_grad_(False)
        with torch.no_grad():
            want, got = model(probe), folded(probe)
    finally:
        model.train(was_training)
    scale = float(want.abs().max()) if want.numel() else 0.0
    err = float((want - got).abs().max()) if want.numel() else 0.0
    if not err <= LOGIT_RTOL * max(scale, 1.0):
        raise ConfigError(
            f"execution.fold_bn: folding the BatchNorms of {type(model).__name__} into their convolutions changes "
            f"its logits by {err:.3g} (more than rounding: a convolution's output is also used without its "
            "BatchNorm); set execution.fold_bn: false"
        )
    return folded


def _state_key(model: nn.Module) -> Hashable:
    """Changes whenever a parameter or buffer is replaced or modified in place (an optimiser step)."""
    state = list(model.parameters()) + list(model.buffers())
    return tuple((t.data_ptr(), t._version, t.device.type, t.dtype) for t in state)


def folded(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """The folded copy of ``model`` (cached while its weights stay the same), built with ``probe`` (a few of the
    inputs at hand: the pairs are found and the fold checked on them)."""
    key = _state_key(model)
    hit = _CACHE.get(id(model))
    if hit is not None and hit[0]() is model and hit[1] == key:
        _CACHE.move_to_end(id(model))
        return hit[2]
    out = fold_batchnorm(model, probe)
    _CACHE[id(model)] = (weakref.ref(model), key, out)
    while len(_CACHE) > _MAX_CACHED:
        _CACHE.popitem(last=False)
    return out
