"""Activations and loss gradients at several layers of a model, one forward (and backward) pass per batch.

TCAV (:mod:`bamkit.attribution.tcav`, Kim et al. 2018) needs, for each bottleneck layer, the activations of the
concept and random image sets and the gradient of the target-class loss. Taking every layer from the same pass
gives each layer exactly the values a pass hooking it alone gives (forward hooks do not change the computation)
at a fraction of the passes; :func:`layer_groups` keeps the activations held at once under a memory budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bamkit.attribution.cam import capture_output, find_module, single_output

# Bytes of activations tcav() holds at once: the layers are taken in groups that fit (layer_groups), each group in
# one forward pass per image set. ResNet-50 at 224 px with BAM's 100-image sets (target gradients, concept,
# counterpart, one random set): layer1 alone (1.28 GB), layer2 + layer3 (0.96 GB), layer4 + fc; EfficientNet-Lite0
# at 80 px: all five bottlenecks at once (the demo: one forward pass per image set instead of five).
ACTIVATION_BUDGET = 1 << 30


@contextlib.contextmanager
def _capture(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """One forward hook per layer of ``layers`` (:func:`capture_output`): layer -> its store, while the block runs."""
    with contextlib.ExitStack() as stack:
        yield {
            layer: stack.enter_context(capture_output(find_module(model, layer), layer)) for layer in layers
        }


def layer_activations(
    model: nn.Module, images: torch.Tensor, layers: Sequence[str], batch_size: int
) -> dict[str, np.ndarray]:
    """Flattened activations (M, D_layer) float32 of ``images`` (M,C,H,W) at every module of ``layers``, taken in
    one forward pass per batch (a layer's values do not depend on which other layers are hooked)."""
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with torch.no_grad(), _capture(model, layers) as stores:
        for i in range(0, len(images), batch_size):
            for store in stores.values():
                store.clear()
            model(images[i : i + batch_size])
            for layer, store in stores.items():
                out[layer].append(single_output(store, layer).flatten(1).float().cpu().numpy())
    return {layer: np.concatenate(parts) for layer, parts in out.items()}


def loss_gradients(
    model: nn.Module, images: torch.Tensor, target_class: int, layers: Sequence[str], batch_size: int
) -> dict[str, np.ndarray]:
    """∂CE(f(x), target_class)/∂a at every module of ``layers`` for each image, flattened (N, D_layer) float32,
    from one forward and one backward pass per batch."""
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with _capture(model, layers) as stores:
        for i in range(0, len(images), batch_size):
            for store in stores.values():
                store.clear()
            x = images[i : i + batch_size]
            target = torch.full((len(x),), target_class, dtype=torch.long, device=x.device)
            with torch.enable_grad():
                # the activations must be in a graph: let the input require grad (weights are frozen)
                logits = model(x.detach().clone().requires_grad_(True))
                acts = [single_output(store, layer) for layer, store in stores.items()]
                # per-image losses are independent in eval mode, so the gradient of the sum gives each row's own
                loss = F.cross_entropy(logits.float(), target, reduction="sum")
            grads = torch.autograd.grad(loss, acts)
            for layer, grad in zip(stores, grads, strict=True):
                out[layer].append(grad.flatten(1).float().cpu().numpy())
    return {layer: np.concatenate(parts) for layer, parts in out.items()}


def layer_groups(dims: dict[str, int], n_images: int, budget: int | None = None) -> list[tuple[str, ...]]:
    """Consecutive layers whose float32 activations of ``n_images`` images fit in ``budget`` bytes together.

    :func:`tcav` takes each group's activations in one pass per image set (see :data:`ACTIVATION_BUDGET` for
    the groups of the demo's and the paper's models). A layer over the budget is a group of one.
    """
    budget = ACTIVATION_BUDGET if budget is None else budget
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    size = 0
    for layer, d in dims.items():
        need = 4 * d * n_images
        if current and size + need > budget:
            groups.append(tuple(current))
            current, size = [], 0
        current.append(layer)
        size += need
    if current:
        groups.append(tuple(current))
    return groups
