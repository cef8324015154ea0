"""The options of the δ optimisation (BAM §4.4, App. A; docs/dataset.md#the-delta-patch): one frozen dataclass, the
schema of ``bamkit delta --set``, of ``bamkit run``'s ``delta:`` section and of the Python API."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bamkit.errors import ConfigError

Optimizer = Literal["sgd", "adam"]
Projection = Literal["hard", "penalty"]
Init = Literal["paste", "bam_code"]
# BAM's delta script (construct_delta_patch.py) subtracts these per-channel means (its TF ResNet's preprocessing)
# from the dog composite and uses the result as δ₀; docs/dataset.md#the-delta-patch.
BAM_CODE_MEAN = (123.68, 116.78, 103.94)
# Paper defaults (BAM App. A): λ = 500 for plain gradient descent. Adam's step is ~lr per pixel whatever the
# gradient's scale, so it gets its own default in pixel units.
DEFAULT_LR = {"sgd": 500.0, "adam": 2.0}


@dataclass(frozen=True)
class DeltaOptions:
    """Options of the δ optimisation (docs/dataset.md#the-delta-patch). All lengths are in 0–255 pixel units.

    Args:
        steps: gradient steps per image (paper: 300).
        lr: step size λ; ``None`` = 500 for ``sgd`` (paper), 2 for ``adam``.
        optimizer: ``"sgd"`` (paper: plain gradient descent; with ``momentum``) or ``"adam"``.
        momentum: SGD momentum (paper: 0).
        eta1: weight of −‖δ‖₂, which keeps the patch visible (paper: 0.01).
        eta2: weight of the pixel-range hinge Σ[(x+δ−255)⁺ + (−x−δ)⁺] (BAM code: 0.01).
        eta3: weight of the outside-mask term Σ|δ ⊙ (1 − I_c)|; used with ``projection="penalty"``.
        projection: ``"hard"`` (δ ← δ ⊙ I_c after each step, BAM's code) or ``"penalty"`` (the paper's η3 term).
        tol: early stop: an image stops once its prediction is unchanged and ‖Δf‖/‖f(x)‖ < tol; ``None`` runs
            every step (paper).
        threshold: ‖Δf‖/‖f(x)‖ below which a patched image with an unchanged prediction counts as functionally
            similar (stored as ``functionally_similar``). Why 0.1: the paper asks f(x) ≈ f(x + δ) over all
            logits without a number; 10 % of the logit vector's norm is the tolerance BAM itself uses for
            "insignificant" (IIR's t = 10 %, §4.4), and together with an unchanged prediction it separates the
            δs that converged from those that did not (docs/reproduction.md).
        keep_best: return each image's iterate with the smallest ‖f(x+δ) − f(x)‖₂ seen (the final one included)
            instead of the last; plain gradient descent at λ = 500 oscillates on some models. Paper: off.
        init: δ₀. ``"paste"`` (bamkit's default): δ₀ = I_c ⊙ (x_dog − x), so x + δ₀ is the clean dog paste.
            ``"bam_code"``: BAM's released script: δ₀ = I_c ⊙ (x_dog − mean) with the TF means
            (123.68, 116.78, 103.94), so x + δ₀ = x + x_dog − mean inside the mask — the scene stays visible under
            an additive dog, which is what the paper's IIR figures were computed on (docs/dataset.md#the-delta-patch; the
            script's first, unmasked gradient step is not reproduced: δ₀ is masked from the start).
        init_noise: std (pixels) of seeded Gaussian noise added to δ₀ inside the mask; 0 = δ₀ is the clean paste.
        seed: seed of that noise; each image draws from its own generator seeded by (seed, image index), so the
            result does not depend on batching or on resuming.
        batch_size: images optimised at once (bounds memory).
    """

    steps: int = 300
    lr: float | None = None
    optimizer: Optimizer = "sgd"
    momentum: float = 0.0
    eta1: float = 0.01
    eta2: float = 0.01
    eta3: float = 0.01
    projection: Projection = "hard"
    tol: float | None = None
    threshold: float = 0.1
    keep_best: bool = False
    init: Init = "paste"
    init_noise: float = 0.0
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        from bamkit.config import check_choices

        check_choices(self, "delta option")
        checks = [
            (isinstance(self.steps, int) and self.steps >= 0, "steps", "an integer ≥ 0"),
            (self.lr is None or (math.isfinite(self.lr) and self.lr > 0), "lr", "a positive number or None"),
            (0.0 <= self.momentum < 1.0, "momentum", "in [0, 1)"),
            (self.eta1 >= 0 and self.eta2 >= 0 and self.eta3 >= 0, "eta1/eta2/eta3", "≥ 0"),
            (self.tol is None or self.tol > 0, "tol", "a positive number or None"),
            (self.threshold > 0, "threshold", "a positive number"),
            (self.init_noise >= 0, "init_noise", "≥ 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer ≥ 0"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer ≥ 1"),
        ]
        for ok, name, expected in checks:
            if not ok:
                value = {"eta1/eta2/eta3": (self.eta1, self.eta2, self.eta3)}.get(
                    name, getattr(self, name, None)
                )
                raise ConfigError(f"delta option {name}={value!r} is invalid; expected {expected}")

    @property
    def step_size(self) -> float:
        """λ actually used (the optimiser's default when ``lr`` is None)."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr"] = self.step_size
        return d

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> DeltaOptions:
        """Build from keyword options, each checked against its declared type (the ``Literal`` choices
        included); an unknown name is a ConfigError that suggests the closest known one."""
        from bamkit.config import from_dict

        return from_dict(cls, kwargs, "delta")
