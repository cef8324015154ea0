"""Pure pixel functions of the BAM composites (BAM §3.1; SPEC §4.3). No I/O, no hidden randomness.

The paste follows BAM's ``paste_objects_to_scenes``: the object side with the larger object/scene ratio becomes
a random integer in ``[lo, hi)`` pixels, the other side keeps the aspect ratio (truncated), the top-left corner
is uniform in ``{0 … S-h-1} x {0 … S-w-1}``, and the cut-out is resized bilinearly with premultiplied alpha
(PIL's RGBA resize). Two deliberate differences, both so that the sets pair pixel-exactly (SPEC §4.5):

* the object's own COCO mask is its alpha (BAM turned every pure-black pixel transparent, also black object
  pixels — a PITFALL in SPEC §4.2);
* the resized alpha is thresholded at one half, so each output pixel is either the object's or the scene's.
  BAM blended the soft edge; a hard edge makes ``mask`` exactly the pixels that differ between ``obj_scene``,
  ``scene_only`` and ``obj_gray``, so ``scene_only == obj_scene`` outside the mask and
  ``obj_gray == obj_scene`` inside it hold exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Placement:
    """Where and how large one object is pasted: rows ``y0 … y0+h-1``, columns ``x0 … x0+w-1``."""

    y0: int
    x0: int
    h: int
    w: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)``, end exclusive (API.md ``boxes``)."""
        return self.y0, self.x0, self.y0 + self.h, self.x0 + self.w


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """The generator of one composite, derived from ``(seed, *key)`` only (never from worker order)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in key)]))


def draw_placement(
    obj_hw: tuple[int, int], size: int, size_range: tuple[int, int], rng: np.random.Generator
) -> Placement:
    """BAM's size and location draw for a cut-out of shape ``obj_hw`` in a ``size`` x ``size`` scene.

    Args:
        obj_hw: ``(h, w)`` of the object's crop at source resolution (the aspect ratio is taken from it).
        size: the scene side S.
        size_range: ``[lo, hi)`` pixels for the larger relative side (BAM: ``int(S/√3)``, ``int(S/√2)``).
        rng: this composite's generator (:func:`rng_for`).
    """
    oh, ow = int(obj_hw[0]), int(obj_hw[1])
    lo, hi = size_range
    side = int(rng.integers(lo, hi))
    # Square scenes: the larger relative side is the larger side (BAM compares ow/S with oh/S).
    if ow > oh:
        w, h = side, int(side / ow * oh)
    else:
        h, w = side, int(side / oh * ow)
    h, w = max(h, 1), max(w, 1)
    y0 = int(rng.integers(0, max(size - h, 1)))
    x0 = int(rng.integers(0, max(size - w, 1)))
    return Placement(y0=y0, x0=x0, h=h, w=w)


def shrink_cutout(rgb: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Bound a cut-out to ``max_side`` pixels (aspect kept) as premultiplied-alpha RGBA, for the source cache.

    Every paste downsizes to at most ``max_side``, so caching the cut-out at that bound keeps memory and disk
    independent of the COCO image size at the cost of one extra (downscaling) resample.

    Args:
        rgb: (h, w, 3) uint8 crop; mask: (h, w) bool object pixels.
        max_side: the largest pasted side.

    Returns:
        ``rgba`` (h', w', 4) uint8 with alpha 0/255 and black outside the object, and its ``(h', w')``.
    """
    rgba = np.concatenate([rgb * mask[..., None], (mask * 255).astype(np.uint8)[..., None]], axis=-1)
    rgba = rgba.astype(np.uint8)
    h, w = mask.shape
    if max(h, w) <= max_side:
        return rgba, np.array([h, w], dtype=np.int32)
    scale = max_side / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    out = np.asarray(Image.fromarray(rgba, "RGBA").resize((nw, nh), Image.BILINEAR))
    return out, np.array([nh, nw], dtype=np.int32)


def resize_object(rgba: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an RGBA cut-out to ``(h, w)`` (PIL bilinear, premultiplied alpha) and harden its edge.

    Returns:
        ``rgb`` (h, w, 3) uint8 and ``mask`` (h, w) bool = alpha >= 128 (alpha > 0 when that would be empty,
        so a thin object never vanishes).
    """
    out = np.asarray(Image.fromarray(rgba, "RGBA").resize((w, h), Image.BILINEAR))
    alpha = out[..., 3]
    mask = alpha >= 128
    if not mask.any():
        mask = alpha > 0
    if not mask.any():  # a degenerate cut-out: keep the centre pixel so every composite has an object
        mask = np.zeros_like(mask)
        mask[h // 2, w // 2] = True
    return np.ascontiguousarray(out[..., :3]), mask


def paste(
    background: np.ndarray, obj_rgb: np.ndarray, obj_mask: np.ndarray, where: Placement
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a resized object onto a copy of ``background`` at ``where``.

    Args:
        background: (S, S, 3) uint8 scene (or uniform gray).
        obj_rgb: (h, w, 3) uint8; obj_mask: (h, w) bool, from :func:`resize_object`.
        where: the placement (``h``, ``w`` equal the object's shape).

    Returns:
        ``image`` (S, S, 3) uint8 and ``mask`` (S, S) bool, the object's pixels in output coordinates.
    """
    size = background.shape[0]
    image = background.copy()
    mask = np.zeros((size, size), dtype=bool)
    y0, x0, y1, x1 = where.box
    np.copyto(image[y0:y1, x0:x1], obj_rgb, where=obj_mask[..., None])
    mask[y0:y1, x0:x1] = obj_mask
    return image, mask


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight ``(y0, x0, y1, x1)`` (end exclusive) of a mask's pixels; ``-1`` s when it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.full(4, -1, dtype=np.int32)
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], dtype=np.int32)


def fit_scene(rgb: np.ndarray, size: int) -> np.ndarray:
    """A scene image at ``size`` x ``size`` (PIL bilinear; MiniPlaces is already 128 x 128)."""
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR))


def gray(size: int, value: int) -> np.ndarray:
    """The uniform gray background of X_{o,g}: (S, S, 3) uint8."""
    return np.full((size, size, 3), value, dtype=np.uint8)
