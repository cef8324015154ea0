"""The IIR δ objective and its batched optimiser (BAM §4.4, App. A; docs/dataset.md#the-delta-patch). Pure torch.

BAM's Input Independence Rate needs, for each scene-only image ``x`` (the ``bamboo_forest`` set), a patch ``δ``
shaped like a dog such that the scene model barely notices it: ``f(x + δ) ≈ f(x)``. The paper minimises

    L(δ) = ‖f(x+δ) − f(x)‖₂ − η1‖δ‖₂ + η2 Σ[(x+δ−255)⁺ + (0−x−δ)⁺] (+ η3 Σ|δ ⊙ (1 − I_c)|)

with plain gradient descent ``δ ← δ − λ ∂L/∂δ``, λ = 500, η1 = 0.01, 300 steps, δ₀ taken from a dog image. BAM's
script replaces the η3 term by a hard projection ``δ ← δ ⊙ I_c`` after every step; bamkit does the same by
default (``projection="hard"``) and keeps the soft penalty as an option (``projection="penalty"``).

Why δ lives in 0–255 pixel units at the *stored* resolution: the paper's λ = 500 and η's were tuned for a model
that takes 0–255 pixels, so parametrising δ in the same units keeps their meaning, and the conversion to the
model's normalised input space (bilinear resize to ``input_size``, /255, mean/std) happens inside the loss where it
is differentiable. Optimising at the stored resolution (128 px in the paper, 64 px in the demo) means the uint8
image written to the ``bamboo_forest_patch`` set is exactly the optimised one up to rounding; optimising at the
model's 224 px would need a lossy down-resize before storage and the stored image would no longer be what was
optimised.

Every image in a batch has its own δ, mask and logits; the loss is a sum of per-image terms and the model runs in
eval mode, so the gradient of the summed loss with respect to one image's δ is that image's own gradient: batching
changes the speed, not the result (tests check batched == one-by-one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bamkit.delta.options import BAM_CODE_MEAN, DeltaOptions
from bamkit.preprocess import Preprocess

_EPS = 1e-12  # inside the square roots: ‖·‖₂ has no gradient at 0 (docs/dataset.md#the-delta-patch)


@dataclass
class DeltaResult:
    """The outcome of :func:`optimize_batch` for B images of side H×W.

    Attributes:
        patched: uint8 (B,H,W,3), ``clip(round(x + δ), 0, 255)`` — what is stored; never wrapped around.
        delta: float (B,3,H,W), the final δ in pixel units before rounding and clipping.
        clipped: bool (B,H,W), pixels where some channel of x + δ left [0, 255] and was clipped.
        steps_run: int64 (B,), updates applied to each image (< ``steps`` when early stopping froze it).
        history: float (S,B), the per-image loss L(δ) before each step (S = steps actually looped).
        loss: float (B,), L(δ) at the final (float) δ.
        logit_change: float (B,), ‖f(x+δ) − f(x)‖₂ at the final (float) δ.
    """

    patched: torch.Tensor
    delta: torch.Tensor
    clipped: torch.Tensor
    steps_run: torch.Tensor
    history: torch.Tensor
    loss: torch.Tensor
    logit_change: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def model_input(pixels: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """Differentiable twin of :meth:`Preprocess.__call__` for float pixels.

    Args:
        pixels: float (N,3,H,W) in 0–255 units (may leave the range during optimisation).
        preprocess: the checkpoint's preprocessing.

    Returns:
        float (N,3,S,S) in model space. Same bilinear resize (half-pixel centres, no antialias) as
        ``Preprocess.pixels``, but without its final clamp, which would cut the gradient of out-of-range pixels —
        the range hinge handles those. For in-range pixels both give the same values.
    """
    x = pixels / 255.0
    side = preprocess.input_size
    if x.shape[-2:] != (side, side):
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return preprocess.normalize(x)


def _norm(t: torch.Tensor) -> torch.Tensor:
    """Per-image ‖t‖₂ over all but the first dimension, smoothed at 0 (docs/dataset.md#the-delta-patch)."""
    return torch.sqrt(t.flatten(1).pow(2).sum(1) + _EPS)


def delta_loss(
    model: torch.nn.Module,
    preprocess: Preprocess,
    x: torch.Tensor,
    delta: torch.Tensor,
    mask: torch.Tensor,
    logits_clean: torch.Tensor,
    options: DeltaOptions,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image BAM δ objective (BAM App. A, docs/dataset.md#the-delta-patch).

    Args:
        model: eval-mode classifier on normalised input, returning logits (N,K).
        preprocess: its preprocessing.
        x: float (N,3,H,W), the scene images in 0–255 pixels.
        delta: float (N,3,H,W), δ in pixel units.
        mask: float (N,1,H,W) in {0,1}, the dog mask I_c.
        logits_clean: (N,K), f(x).
        options: the η's and the projection mode.

    Returns:
        ``(loss, logit_change, logits)``: loss (N,), ‖f(x+δ) − f(x)‖₂ (N,), f(x+δ) (N,K).
    """
    patched = x + delta
    logits = model(model_input(patched, preprocess))
    change = _norm(logits - logits_clean)
    loss = change - options.eta1 * _norm(delta)
    if options.eta2:
        hinge = F.relu(patched - 255.0) + F.relu(-patched)
        loss = loss + options.eta2 * hinge.flatten(1).sum(1)
    if options.projection == "penalty" and options.eta3:
        loss = loss + options.eta3 * (delta * (1.0 - mask)).abs().flatten(1).sum(1)
    return loss, change, logits


def _init_base(x: torch.Tensor, options: DeltaOptions) -> torch.Tensor:
    """What δ₀ subtracts from the dog composite: the scene x (``paste``) or BAM's script's channel means."""
    if options.init == "bam_code":
        return torch.tensor(BAM_CODE_MEAN, dtype=x.dtype, device=x.device)[None, :, None, None].expand_as(x)
    return x


def init_noise(
    indices: np.ndarray | list[int], shape: tuple[int, int, int], options: DeltaOptions
) -> torch.Tensor:
    """Seeded Gaussian noise (B,3,H,W) for δ₀: image ``i`` draws from a generator seeded by (seed, i), on the CPU,
    so the draw is the same whatever the batching, the resume point or the device."""
    out = torch.zeros((len(indices), *shape))
    if options.init_noise > 0:
        for row, index in enumerate(indices):
            state = np.random.SeedSequence([int(options.seed), int(index)]).generate_state(1)[0]
            g = torch.Generator().manual_seed(int(state))
            out[row] = torch.randn(shape, generator=g) * options.init_noise
    return out


def _make_optimizer(param: torch.Tensor, options: DeltaOptions) -> torch.optim.Optimizer:
    if options.optimizer == "adam":
        return torch.optim.Adam([param], lr=options.step_size)
    return torch.optim.SGD([param], lr=options.step_size, momentum=options.momentum)


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


def to_pixels(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in 0–255 units."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 images of shape (N,H,W,3), got {images.dtype} {tuple(images.shape)}"
        )
    return images.permute(0, 3, 1, 2).to(dtype)


def quantize(x: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Store x + δ losslessly as uint8: round, then *clip* to [0, 255] (BAM's script wraps around — docs/dataset.md#the-delta-patch). Returns ``(patched uint8 (N,H,W,3), clipped bool (N,H,W))``."""
    value = (x + delta).round()
    clipped = ((value < 0) | (value > 255)).any(1)
    patched = value.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return patched, clipped


class _Best:
    """Per-image iterate with the smallest logit change so far (``keep_best``)."""

    def __init__(self, delta: torch.Tensor, b: int) -> None:
        self.delta = delta.clone()
        self.change = torch.full((b,), float("inf"), dtype=delta.dtype, device=delta.device)

    def update(self, delta: torch.Tensor, change: torch.Tensor) -> None:
        better = change < self.change
        self.change = torch.where(better, change, self.change)
        self.delta = torch.where(better[:, None, None, None], delta, self.delta)


def optimize_batch(
    model: torch.nn.Module,
    preprocess: Preprocess,
    scene: torch.Tensor,
    dog: torch.Tensor,
    masks: torch.Tensor,
    options: DeltaOptions,
    indices: np.ndarray | list[int] | None = None,
    progress: Any = None,
) -> DeltaResult:
    """Optimise one δ per image, all images at once (BAM App. A; docs/dataset.md#the-delta-patch).

    δ₀ = I_c ⊙ (x_dog − x), so x + δ₀ is the clean dog paste inside the mask and x outside it (``init="paste"``;
    ``init="bam_code"`` subtracts BAM's channel means instead of x, as its script does). Each step
    evaluates the per-image loss, takes one optimiser step on δ and, with the hard projection, zeroes δ (and its
    gradient, so Adam's moments stay zero too) outside the mask. With ``tol`` set, an image whose prediction is
    unchanged and whose ratio ‖Δf‖/‖f(x)‖ < tol is frozen at its current δ; the loop ends when every image is frozen.

    Args:
        model: classifier on normalised input returning logits; evaluated in eval mode (restored afterwards).
        preprocess: its preprocessing (``input_size``, mean/std).
        scene: uint8 (B,H,W,3), x (the ``bamboo_forest`` images).
        dog: uint8 (B,H,W,3), the composite with the dog pasted into x (``obj_scene`` row of the same pair).
        masks: bool (B,H,W), the dog mask I_c.
        options: see :class:`DeltaOptions`.
        indices: the images' row numbers in their set, which seed ``init_noise``; default 0..B−1.
        progress: optional tqdm-like bar, advanced by one per step.

    Returns:
        A :class:`DeltaResult`; tensors on the inputs' device.
    """
    if scene.shape != dog.shape or masks.shape != scene.shape[:3]:
        raise ValueError(
            f"scene {tuple(scene.shape)}, dog {tuple(dog.shape)} and masks {tuple(masks.shape)} must agree "
            "as (B,H,W,3), (B,H,W,3), (B,H,W)"
        )
    dtype = _model_dtype(model)
    device = scene.device
    b, h, w, _ = scene.shape
    indices = np.arange(b) if indices is None else np.asarray(indices)
    x = to_pixels(scene, dtype)
    mask = masks.to(device=device, dtype=dtype)[:, None]
    hard = options.projection == "hard"

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits_clean = model(model_input(x, preprocess))
            pred_clean = logits_clean.argmax(1)
            clean_norm = _norm(logits_clean)
        noise = init_noise(indices, (3, h, w), options).to(device=device, dtype=dtype)
        delta = (mask * (to_pixels(dog, dtype) - _init_base(x, options) + noise)).requires_grad_(True)
        opt = _make_optimizer(delta, options)
        active = torch.ones(b, dtype=torch.bool, device=device)
        steps_run = torch.zeros(b, dtype=torch.int64, device=device)
        history = []
        best = _Best(delta.detach(), b) if options.keep_best else None
        for step in range(options.steps):
            loss, change, logits = delta_loss(model, preprocess, x, delta, mask, logits_clean, options)
            history.append(loss.detach())
            if best is not None:
                best.update(delta.detach(), change.detach())
            if options.tol is not None:
                done = (logits.argmax(1) == pred_clean) & (change.detach() / clean_norm < options.tol)
                active &= ~done
                if not bool(active.any()):
                    if progress is not None:
                        progress.update(options.steps - step)
                    break
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            if hard:
                grad = grad * mask
            before = delta.detach().clone() if options.tol is not None else None
            delta.grad = grad
            opt.step()
            with torch.no_grad():
                if hard:
                    delta.mul_(mask)
                if before is not None:
                    # Frozen images keep their δ exactly (Adam/momentum would otherwise keep moving them).
                    delta.copy_(torch.where(active[:, None, None, None], delta, before))
            steps_run += active.long()
            if progress is not None:
                progress.update(1)
        with torch.no_grad():
            loss, change, _ = delta_loss(model, preprocess, x, delta, mask, logits_clean, options)
            if best is not None and options.steps > 0:
                best.update(delta.detach(), change)
                delta = best.delta
                loss, change, _ = delta_loss(model, preprocess, x, delta, mask, logits_clean, options)
    finally:
        model.train(was_training)

    delta = delta.detach()
    patched, clipped = quantize(x, delta)
    hist = torch.stack(history) if history else torch.zeros((0, b), dtype=dtype, device=device)
    return DeltaResult(patched, delta, clipped, steps_run, hist, loss, change)
