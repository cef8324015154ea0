"""The report's saliency-grid examples: per leg, one input (uint8 image at model resolution, its mask) and each
method's 2-D map, under ``examples/<scenario>__<model>__<set>/`` of the results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_example(
    folder: Path, leg: Any, meta: Any, label: str, row: int, x: torch.Tensor, mask: torch.Tensor,
    entries: dict[str, Any], i: int, true_label: int,
) -> None:  # fmt: skip
    """Write the example input of ``leg`` (row ``row``, ``x`` normalised (C,S,S), ``mask`` (S,S)) and method
    ``label``'s map (entry ``i`` of its cached ``entries``; the ``bam`` mode where the leg has it)."""
    pix = meta.preprocess.denormalize(x[None])[0].clamp(0, 1)
    image = (pix.permute(1, 2, 0) * 255).round().to(torch.uint8)
    d = folder / f"{leg.scenario}__{leg.role}__{leg.set.replace('/', '_')}"
    d.mkdir(parents=True, exist_ok=True)
    names = meta.class_names
    np.savez_compressed(
        d / "input.npz",
        image=image.cpu().numpy(),
        mask=mask.cpu().numpy(),
        row=row,
        scenario=leg.scenario,
        model=leg.role,
        set=leg.set,
        label=names[int(true_label)] if 0 <= true_label < len(names) else str(true_label),
    )
    mode = "bam" if "bam" in entries else next(iter(entries))
    e = entries[mode]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    np.savez_compressed(
        d / f"map__{safe}.npz",
        map=e.maps[i].astype(np.float16),
        method=label,
        mode=mode,
        prediction=names[int(e.prediction[i])],
    )
