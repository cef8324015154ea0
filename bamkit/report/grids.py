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

TITLES = {
    "mcs": "MCS: the same image under f_o (object model) and f_s (scene model) — BAM Fig. 3",
    "rmcs": "Relative MCS: dog_bedroom under the commonality models f_k — BAM Fig. 5",
    "idr": "IDR: f_s on the image with and without the object — BAM Fig. 7",
    "iir": "IIR: f_∅ on x and x + δ (the patch inside the dog's mask) — BAM Fig. 9",
    "faithfulness": "Faithfulness scenario input (RCAP / DAUC / IAUC)",
}


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


def saliency_grid(scenario: str, legs: list[dict], methods: list[str]) -> bytes:
    """One row per leg: the input with the object outline, then each method's map (same colour scale)."""
    cols = [m for m in methods if any(m in leg["maps"] for leg in legs)]
    n_r, n_c = len(legs), len(cols) + 1
    fig, axes = plt.subplots(n_r, n_c, figsize=(1.35 * n_c, 1.45 * n_r + 0.5), squeeze=False)
    for r, leg in enumerate(legs):
        img = leg["image"]
        ax = axes[r, 0]
        ax.imshow(img if img.ndim == 3 else img[..., None].repeat(3, -1))
        if leg["mask"].any():
            ax.contour(leg["mask"].astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(f"{leg['model']} · {leg['set']}\nlabel {leg['label']}", fontsize=6)
        for c, m in enumerate(cols, start=1):
            ax = axes[r, c]
            if m in leg["maps"]:
                sal, pred = leg["maps"][m]
                ax.imshow(sal, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{m}" if r == 0 else "", fontsize=7)
            if c == 1 and m in leg["maps"]:
                ax.set_ylabel(f"pred {leg['maps'][m][1]}", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(TITLES.get(scenario, scenario), fontsize=9)
    fig.tight_layout()
    return _png(fig)
