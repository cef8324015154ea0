"""Saliency grids like BAM's Figures 3, 5, 7 and 9: one input per scenario, every method's map side by side.

The evaluate stage stores, per scenario leg, the example input (uint8 image at model resolution, object
mask) and each method's 2-D map under ``examples/<scenario>__<model>__<set>/``; one grid row per leg, so
MCS shows f_o above f_s and IDR the image with the object above the one without.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bamkit.report.plots import _png  # noqa: E402


def load_examples(results: Path) -> dict[str, list[dict]]:
    """scenario -> legs (dicts with image, mask, model, set, label, maps: method -> (map, prediction))."""
    out: dict[str, list[dict]] = {}
    root = results / "examples"
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        inp = d / "input.npz"
        if not inp.is_file():
            continue
        z = np.load(inp)
        leg = {
            "image": z["image"],
            "mask": z["mask"],
            "model": str(z["model"]),
            "set": str(z["set"]),
            "label": str(z["label"]),
            "row": int(z["row"]),
            "maps": {},
        }
        for f in sorted(d.glob("map__*.npz")):
            m = np.load(f)
            leg["maps"][str(m["method"])] = (m["map"].astype(np.float32), str(m["prediction"]))
        out.setdefault(str(z["scenario"]), []).append(leg)
    for legs in out.values():  # deterministic row order: f_o before f_s, with-object before without
        legs.sort(key=lambda g: (g["set"] not in ("obj_scene", "bamboo_forest"), g["model"], g["set"]))
    return out


MAPS_PER_ROW = 4  # maps beside each input: 5 thumbnails of ~1.9 in fit the page (1,100 px) unscaled
THUMB_IN = 1.9  # inches per thumbnail: ~180 px at the report's 110 dpi (>= 128 px)


def saliency_grid(title: str, legs: list[dict], methods: list[str]) -> bytes:
    """Per leg, the input with the object outline, then each method's map (same colour scale), at most
    :data:`MAPS_PER_ROW` maps to a row (the input repeats), so that the page shows the thumbnails unscaled."""
    cols = [m for m in methods if any(m in leg["maps"] for leg in legs)]
    chunks = [cols[i : i + MAPS_PER_ROW] for i in range(0, len(cols), MAPS_PER_ROW)] or [[]]
    n_c = 1 + max(len(c) for c in chunks)
    rows = [(leg, chunk) for chunk in chunks for leg in legs]
    fig, axes = plt.subplots(
        len(rows), n_c, figsize=(THUMB_IN * n_c, (THUMB_IN + 0.35) * len(rows) + 0.5), squeeze=False
    )
    for r, (leg, chunk) in enumerate(rows):
        img = leg["image"]
        ax = axes[r, 0]
        ax.imshow(img if img.ndim == 3 else img[..., None].repeat(3, -1))
        if leg["mask"].any():
            ax.contour(leg["mask"].astype(float), levels=[0.5], colors="yellow", linewidths=1.0)
        ax.set_title(f"{leg['model']} · {leg['set']}\nlabel {leg['label']}", fontsize=9)
        for c in range(1, n_c):
            ax = axes[r, c]
            m = chunk[c - 1] if c - 1 < len(chunk) else None
            if m is None:
                ax.axis("off")
                continue
            if m in leg["maps"]:
                sal, pred = leg["maps"][m]
                ax.imshow(sal, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{m}\npred {pred}", fontsize=9)
            else:
                ax.set_title(f"{m}\n(no map)", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)
