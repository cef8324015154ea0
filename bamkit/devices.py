"""The one rule that decides ``auto`` numerics for training and evaluation alike: bf16 autocast where the device
has fast bf16 arithmetic, channels_last and ``torch.compile`` on a CUDA device, exact fp32 eager elsewhere.

Fast bf16 means a CUDA device with bf16 support (Ampere and newer), or a CPU with AMX tiles for bf16 (``amx_bf16``
in ``/proc/cpuinfo``: Intel Sapphire Rapids and newer). A CPU with only the ``avx512_bf16`` vector instructions
was measured slower in bf16 than in fp32: on the 2-core AMD EPYC bamkit's demo is timed on, bf16 autocast made an
EfficientNet-Lite0 training step (batch 32, 80 px) 0.19 -> 0.29 s and input gradients slower too, so such a CPU
stays in fp32.

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


CPUINFO = "/proc/cpuinfo"
# The CPU feature flags that make bf16 autocast pay on a CPU: AMX tile multiplication in bf16.
CPU_BF16_FLAGS = frozenset({"amx_bf16", "amx_tile"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (or of the text ``cpuinfo``); empty where there is
    no such file (macOS, Windows)."""
    if cpuinfo is None:
        try:
            with open(CPUINFO, encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_bf16_fast(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU (or one with ``flags``) multiplies bf16 on AMX tiles, where bf16 autocast is faster than
    fp32; vector-only ``avx512_bf16`` is not (module docstring)."""
    return CPU_BF16_FLAGS <= (cpu_flags() if flags is None else flags)


def bf16_supported(device: str | torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` runs bf16 autocast fast: a CUDA device with bf16 support (Ampere and newer), or a CPU with
    AMX bf16 tiles (:func:`cpu_bf16_fast`; ``flags`` stands for the CPU's, in tests)."""
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if d.type == "cpu":
        return cpu_bf16_fast(flags)
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
