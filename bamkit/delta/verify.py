"""Verify δ patches on exactly what is stored: uint8 images through the checkpoint's own preprocessing.

The optimiser's float δ is rounded and clipped before storage, so its last loss value says little about the
stored image. Every figure written to ``bamboo_forest_patch`` is recomputed here from the uint8 scene ``x`` and the
uint8 patched image ``x + δ`` (BAM §4.4: "‖f(x+δ) − f(x)‖ = 0.2 vs ‖f(x)‖ = 31.9").
"""

from __future__ import annotations

import numpy as np
import torch

from bamkit.preprocess import Preprocess

# Per-image figures stored in the bamboo_forest_patch set, with their dtypes: the first group is recomputed from
# the stored images (VERIFIED), the last two are the optimiser's own record (clipping happens before storage and
# cannot be seen in the stored bytes).
FIGURES: dict[str, str] = {
    "delta_norm": "float32",  # ‖δ‖₂ of the stored patch, pixel units
    "logit_change": "float32",  # ‖f(x+δ) − f(x)‖₂
    "logit_norm": "float32",  # ‖f(x)‖₂
    "ratio": "float32",  # logit_change / logit_norm
    "pred_clean": "int16",  # argmax f(x)
    "pred_patched": "int16",  # argmax f(x+δ)
    "same_prediction": "bool",
    "functionally_similar": "bool",  # same prediction and ratio < threshold
    "outside_max": "uint8",  # max |δ| outside the mask (0 with the hard projection)
    "passed": "bool",  # functionally similar and δ zero outside the mask; failures are kept and flagged
    "n_clipped": "int32",  # pixels whose x + δ left [0, 255] and were clipped
    "steps_run": "int32",
}
RECORDED = ("n_clipped", "steps_run")
VERIFIED = tuple(k for k in FIGURES if k not in RECORDED)


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


@torch.no_grad()
def logits_of(model: torch.nn.Module, preprocess: Preprocess, images: torch.Tensor) -> torch.Tensor:
    """Logits (N,K) of uint8 images (N,H,W,3) through the checkpoint's preprocessing, as downstream stages see them."""
    return model(preprocess(images).to(_model_dtype(model)))


def patch_figures(
    model: torch.nn.Module,
    preprocess: Preprocess,
    scene: np.ndarray,
    patched: np.ndarray,
    masks: np.ndarray,
    threshold: float,
    device: torch.device | str | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-image verification figures of stored patches.

    Args:
        model: eval-mode classifier on normalised input, returning logits.
        preprocess: its preprocessing.
        scene: uint8 (N,H,W,3), the clean images x.
        patched: uint8 (N,H,W,3), the stored x + δ.
        masks: bool (N,H,W), the dog masks I_c.
        threshold: ratio below which (with an unchanged prediction) an image is functionally similar.
        device: where to run the model (default: the model's device).
        batch_size: images per forward pass (bounds memory).

    Returns:
        ``{name: (N,) array}`` for every name in :data:`VERIFIED`.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    n = len(scene)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in VERIFIED}
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, n, batch_size):
            sl = slice(lo, min(lo + batch_size, n))
            x = torch.from_numpy(np.ascontiguousarray(scene[sl])).to(device)
            xp = torch.from_numpy(np.ascontiguousarray(patched[sl])).to(device)
            f0 = logits_of(model, preprocess, x).double()
            f1 = logits_of(model, preprocess, xp).double()
            change = (f1 - f0).norm(dim=1)
            norm = f0.norm(dim=1)
            ratio = change / norm.clamp_min(1e-12)
            same = f0.argmax(1) == f1.argmax(1)
            d = xp.double() - x.double()
            outside = ~torch.from_numpy(np.ascontiguousarray(masks[sl])).to(device)
            cols["delta_norm"].append(d.flatten(1).norm(dim=1).cpu().numpy())
            cols["logit_change"].append(change.cpu().numpy())
            cols["logit_norm"].append(norm.cpu().numpy())
            cols["ratio"].append(ratio.cpu().numpy())
            cols["pred_clean"].append(f0.argmax(1).cpu().numpy())
            cols["pred_patched"].append(f1.argmax(1).cpu().numpy())
            cols["same_prediction"].append(same.cpu().numpy())
            cols["functionally_similar"].append((same & (ratio < threshold)).cpu().numpy())
            outside_max = (d.abs() * outside[..., None]).flatten(1).amax(1)
            cols["outside_max"].append(outside_max.cpu().numpy())
            cols["passed"].append((same & (ratio < threshold) & (outside_max == 0)).cpu().numpy())
    finally:
        model.train(was_training)
    out = {k: np.concatenate(v).astype(FIGURES[k]) if v else np.zeros(0, FIGURES[k]) for k, v in cols.items()}
    return out
