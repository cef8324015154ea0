"""The one rule that decides ``auto`` numerics for training and evaluation alike: bf16 autocast where the device
has fast bf16 arithmetic, channels_last and ``torch.compile`` on a CUDA device, exact fp32 eager elsewhere.

Training (``trainer.precision`` / ``trainer.channels_last``) and evaluation (``execution.precision`` /
``channels_last`` / ``compile``) both call :func:`decide`; each records what it decided, and an evaluation off
fp32 measures its maps' fidelity against fp32 (:mod:`bamkit.evaluate.execution`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Lightning's names for the precisions a decision can name.
LIGHTNING_PRECISION = {"fp32": "32-true", "tf32": "32-true", "bf16": "bf16-mixed"}


@dataclass(frozen=True)
class Numerics:
    """What a run uses: ``precision`` (``fp32`` | ``tf32`` | ``bf16``), NHWC memory, compiled steps."""

    precision: str
    channels_last: bool
    compile: bool

    def as_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


def bf16_supported(device: str | torch.device) -> bool:
    """Whether ``device`` runs bf16 autocast fast: a CUDA device with bf16 support (Ampere and newer)."""
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def decide(
    device: str | torch.device,
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool | str = "auto",
    bf16: bool | None = None,
) -> Numerics:
    """The settings with every ``auto`` decided for ``device``.

    Args:
        bf16: whether the device supports fast bf16 (default: :func:`bf16_supported`; tests pass it).
    """
    cuda = torch.device(device).type == "cuda"
    fast_bf16 = bf16_supported(device) if bf16 is None else bf16
    return Numerics(
        precision=("bf16" if fast_bf16 else "fp32") if precision == "auto" else str(precision),
        channels_last=cuda if channels_last == "auto" else bool(channels_last),
        compile=cuda if compile == "auto" else bool(compile),
    )
