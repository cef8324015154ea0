"""Guided Integrated Gradients (Kapishnikov et al. 2021, "Guided Integrated Gradients: an adaptive path method").

The path from the baseline ``x'`` to the input ``x`` is built greedily (docs/methods.md; PAIR saliency 0.2.1
``core/guided_ig.py`` is the reference semantics): at step t = 1..T with α = t/T, features are kept inside the
corridor ``[α − d, α + d]`` of the straight path, and the features with the smallest |gradient| (a ``fraction`` φ of
all features, by the ``lower`` quantile) move toward the input until the L1 distance to ``x`` is
``‖x − x'‖₁·(1 − t/T)``. The attribution accumulates ``Δx ⊙ g`` with ``g`` the gradient at the start of the step.

The path state is float64, as in PAIR. Each step needs the gradient at the previous point, so the steps are
sequential; bamkit batches *images* instead: the gradients of every image of a group (``opts.batch_size`` images)
come from one forward/backward, and the inner loop of each step runs on all images at once with a per-image
"still moving" mask. Image i's result equals PAIR's ``GuidedIG.GetMask`` on image i alone.

Presets (docs/methods.md): PAIR/paper ``n_steps=200, fraction=0.25, max_dist=0.02`` (bamkit's default, with the black
baseline of bamkit's IG); GAG 2024 ``n_steps=20, fraction=0.25, max_dist=0.1, baseline="mean"`` (zero in the
normalised space = ImageNet-mean gray). ``max_dist=0`` gives IG on the straight path (left Riemann sum),
``max_dist=1`` unbounded Guided IG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bamkit.attribution import paths as P
from bamkit.attribution.base import ExecOptions, Method, check_inputs, functional, model_guard, register
from bamkit.attribution.kernels import InputGradient
from bamkit.errors import ConfigError
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD
from bamkit.progress import bar

_EPS = 1e-9  # PAIR's tolerance for "the L1 target is reached"


def check_baseline_param(baseline: object) -> None:
    """ConfigError unless ``baseline`` is ``"black"``, ``"mean"``, a number or a tensor."""
    ok = (
        isinstance(baseline, torch.Tensor)
        or baseline in ("black", "mean")
        or (isinstance(baseline, (int, float)) and not isinstance(baseline, bool))
    )
    if not ok:
        raise ConfigError(
            f"guided_ig: baseline must be 'black', 'mean', a number or a tensor, got {baseline!r}"
        )


def guided_ig_path(
    grad_fn: Callable[[torch.Tensor], torch.Tensor],
    x_input: torch.Tensor,
    x_base: torch.Tensor,
    n_steps: int,
    fraction: float,
    max_dist: float,
    progress: str = "",
) -> torch.Tensor:
    """Guided IG for a batch of flattened inputs (PAIR 0.2.1 semantics, vectorised over rows).

    Args:
        grad_fn: maps points (B,D) float64 to target-logit gradients (B,D) float64.
        x_input, x_base: (B,D) float64 inputs and baselines.
        n_steps, fraction, max_dist: T, φ and d of the paper.

    Returns:
        (B,D) float64 attributions; rows with ``x_input == x_base`` are zero.
    """
    x = x_base.clone()
    diff = x_input - x_base
    l1_total = (x_input - x_base).abs().sum(1)
    attr = torch.zeros_like(x_input)
    moving = l1_total != 0
    n_feat = x_input.shape[1]
    k = int(math.floor((n_feat - 1) * fraction))  # numpy quantile(method="lower") index
    with torch.no_grad():
        safe_diff = torch.where(diff != 0, diff, torch.ones_like(diff))
        for step in bar(range(n_steps), desc=progress or "guided_ig", unit="step"):
            grad_actual = grad_fn(x)
            grad = grad_actual.clone()
            alpha = (step + 1.0) / n_steps
            alpha_min, alpha_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
            x_min = x_base + (x_input - x_base) * alpha_min
            x_max = x_base + (x_input - x_base) * alpha_max
            l1_target = l1_total * (1 - (step + 1) / n_steps)
            active = moving.clone()
            while bool(active.any()):
                x_old = x.clone()
                x_alpha = torch.where(diff != 0, (x - x_base) / safe_diff, torch.full_like(x, alpha_max))
                behind = (x_alpha < alpha_min) & active[:, None]
                x = torch.where(behind, x_min, x)
                l1_current = (x - x_input).abs().sum(1)
                # math.isclose(a, b, rel_tol, abs_tol), row-wise
                close = (l1_target - l1_current).abs() <= torch.maximum(
                    _EPS * torch.maximum(l1_target.abs(), l1_current.abs()), torch.full_like(l1_target, _EPS)
                )
                close &= active
                grad = torch.where(x == x_max, torch.full_like(grad, math.inf), grad)
                grad_abs = grad.abs()
                threshold = grad_abs.kthvalue(k + 1, dim=1, keepdim=True).values
                sel = (grad_abs <= threshold) & (grad != math.inf)
                l1_s = ((x - x_max).abs() * sel).sum(1)
                gamma = torch.where(
                    l1_s > 0,
                    (l1_current - l1_target) / torch.where(l1_s > 0, l1_s, 1.0),
                    torch.full_like(l1_s, math.inf),
                )
                big = (gamma > 1.0)[:, None]
                moved = torch.where(sel, torch.where(big, x_max, x + (x_max - x) * gamma[:, None]), x)
                update = (active & ~close)[:, None]
                x = torch.where(update, moved, x)
                attr += torch.where(active[:, None], (x - x_old) * grad_actual, torch.zeros_like(x))
                active = active & ~close & big[:, 0]
    return attr


@register("guided_ig", paper="Kapishnikov et al. 2021, Guided Integrated Gradients (CVPR)")
class GuidedIG(Method):
    """Guided Integrated Gradients (docs/methods.md): (N,C,H,W) signed attributions in model space.

    Args:
        n_steps: T, the number of gradient evaluations per image (PAIR 200, GAG 20).
        fraction: φ, the fraction of features selected to move at each inner iteration.
        max_dist: d, the largest deviation (in α) from the straight path; 0 = IG (left Riemann rule),
            1 = unbounded Guided IG.
        baseline: ``"black"`` (normalise(0)), ``"mean"`` (zeros of model space), a number or a tensor
            ((C,H,W), (1,C,H,W) or (N,C,H,W), in model space).
        mean, std: the model's input normalisation, to place ``"black"``.
    """

    output = "input"

    def __init__(
        self,
        n_steps: int = 200,
        fraction: float = 0.25,
        max_dist: float = 0.02,
        baseline: str | torch.Tensor = "black",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ConfigError(f"guided_ig: n_steps must be an integer >= 1, got {n_steps!r}")
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"guided_ig: fraction must be in (0, 1], got {fraction!r} (PAIR default 0.25)")
        if not 0.0 <= max_dist <= 1.0:
            raise ConfigError(f"guided_ig: max_dist must be in [0, 1], got {max_dist!r} (PAIR 0.02, GAG 0.1)")
        check_baseline_param(baseline)
        self.n_steps, self.fraction, self.max_dist = n_steps, float(fraction), float(max_dist)
        self.baseline, self.mean, self.std = baseline, tuple(mean), tuple(std)

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
        base = P.resolve_baseline(self.baseline, inputs, self.mean, self.std)
        out = []
        bs = opts.batch_size
        with model_guard(model), InputGradient().bind(model, opts) as gradient:
            for i in range(0, inputs.shape[0], bs):
                x, b, t = inputs[i : i + bs].detach(), base[i : i + bs], target[i : i + bs]

                def grad_fn(points: torch.Tensor, t=t, shape=x.shape, dtype=x.dtype) -> torch.Tensor:
                    return (
                        gradient(points.view(shape).to(dtype), t).reshape(len(points), -1).to(torch.float64)
                    )

                attr = guided_ig_path(
                    grad_fn,
                    x.reshape(len(x), -1).to(torch.float64),
                    b.reshape(len(x), -1).to(torch.float64),
                    self.n_steps,
                    self.fraction,
                    self.max_dist,
                )
                out.append(attr.view(x.shape).to(inputs.dtype))
        return torch.cat(out) if out else torch.zeros_like(inputs)


guided_ig = functional(GuidedIG)
