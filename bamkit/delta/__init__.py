"""IIR δ patches (BAM §4.4, App. A; docs/dataset.md#the-delta-patch): the objective, its batched optimiser, verification and storage.

Modules: :mod:`~bamkit.delta.optimize` (objective + batched optimiser, pure torch), :mod:`~bamkit.delta.verify`
(figures recomputed from the stored uint8 images), :mod:`~bamkit.delta.store` (HDF5 I/O and resumable partial
results), :mod:`~bamkit.delta.craft` (the stage: ``craft_file``). Names are imported lazily so that
``import bamkit.delta`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeltaOptions": "bamkit.delta.options",
    "DeltaResult": "bamkit.delta.optimize",
    "delta_loss": "bamkit.delta.optimize",
    "optimize_batch": "bamkit.delta.optimize",
    "patch_figures": "bamkit.delta.verify",
    "craft_file": "bamkit.delta.craft",
    "verify_file": "bamkit.delta.craft",
    "read_inputs": "bamkit.delta.store",
    "PATCH_SET": "bamkit.delta.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bamkit.delta' has no attribute {name!r}")
