"""How a shard's attributions run: the suite's ``execution`` settings resolved for the device (the fast path on
CUDA, fp32 on a CPU without AMX bf16 tiles, BatchNorm folded where asked), the record a run keeps of them, and the
fidelity of maps computed off the exact path.

A run off the exact path (bf16, channels_last, compiled or BatchNorm-folded) compares its maps with unfolded fp32
eager ones on the first batch it computes (:data:`FIDELITY_IMAGES` images, Spearman rank correlation per method,
docs/conventions.md#saliency-modes's maps) and records the figures in the shard's metadata and ``summary.json``;
its maps are cached under their own key, so an exact run never reads them.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from bamkit.attribution.base import ExecOptions

log = logging.getLogger(__name__)

FIDELITY_IMAGES = 8  # images of the first batch on which off-fp32 maps are compared with fp32 ones


def exec_options(e, device: torch.device | str = "cpu") -> ExecOptions:
    """The engine's options for a suite's :class:`~bamkit.evaluate.suite.Execution` on ``device``."""
    return ExecOptions(**e.decided_for(device), batch_size=e.sample_batch_size)


def is_exact(opts: ExecOptions) -> bool:
    return opts.precision == "fp32" and not (opts.compile or opts.channels_last or opts.fold_bn)


def cache_suffix(opts: ExecOptions) -> str:
    """Appended to a method's cache key off the exact path (``"@bf16-cl-c-bn"``); ``""`` on it."""
    if is_exact(opts):
        return ""
    flags = (
        ("-cl" if opts.channels_last else "")
        + ("-c" if opts.compile else "")
        + ("-bn" if opts.fold_bn else "")
    )
    return f"@{opts.precision}" + flags


def record(opts: ExecOptions, device: torch.device | str) -> dict[str, Any]:
    """What a run records of its execution; ``fidelity`` is None on the exact path, filled by
    :func:`measure_fidelity` otherwise."""
    return {
        "device": str(device),
        "precision": opts.precision,
        "channels_last": opts.channels_last,
        "compile": opts.compile,
        "fold_bn": opts.fold_bn,
        "fidelity": None if is_exact(opts) else {},
    }


def measure_fidelity(rec: dict[str, Any], model, x, target, methods: dict[str, Any], seeds, opts) -> None:
    """Fill ``rec["fidelity"]`` once: Spearman per method between these maps and unfolded fp32 eager ones."""
    from bamkit.attribution.engine import fidelity

    if rec.get("fidelity") != {}:
        return
    k = min(FIDELITY_IMAGES, x.shape[0])
    rho = fidelity(model, x[:k], target[:k], methods, opts, seeds=seeds[:k])
    rec["fidelity"] = {"images": k, "spearman": rho}
    log.info("evaluate: %s maps vs exact fp32 (Spearman, %d images): %s", cache_suffix(opts)[1:], k, rho)


def out_of_memory(e, device: torch.device | str, scenario: str, error: BaseException) -> str:
    """One line for a device out of memory: the settings that decide the memory a pass holds, and which to lower.
    ``e`` is the suite's ``execution`` section."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"out of memory on {device} in scenario {scenario!r} with execution.sample_batch_size={e.sample_batch_size} "
        f"(precision {e.precision}, batch_size {e.batch_size}): {first}; lower execution.sample_batch_size in the "
        "suite (each pass keeps that many samples' activations for the backward; 64 suits a 16 GB GPU at 224 px), "
        "or keep precision: auto (bf16 on a GPU halves it)"
    )
