"""Pure pixel functions of the BAM composites (BAM §3.1; docs/dataset.md#pasting). No I/O, no hidden randomness.

The paste follows BAM's ``paste_objects_to_scenes``: the object side with the larger object/scene ratio becomes
a random integer in ``[lo, hi)`` pixels, the other side keeps the aspect ratio (truncated), the top-left corner
is uniform in ``{0 … S-h-1} x {0 … S-w-1}``, and the cut-out is resized bilinearly with premultiplied alpha
(PIL's RGBA resize). Two deliberate differences, both so that the sets pair pixel-exactly (docs/dataset.md#sets):

* the object's own COCO mask is its alpha (BAM turned every pure-black pixel transparent, also black object
  pixels — a PITFALL in docs/dataset.md#object-extraction);
* the resized alpha is thresholded at one half, so each output pixel is either the object's or the scene's.
  BAM blended the soft edge; a hard edge makes ``mask`` exactly the pixels that differ between ``obj_scene``,
  ``scene_only`` and ``obj_gray``, so ``scene_only == obj_scene`` outside the mask and
  ``obj_gray == obj_scene`` inside it hold exactly.

The builder works a chunk of rows at a time: :func:`draw_placements` draws every row's placement at once from a
counter-based hash of ``(seed, o, s, i)`` (no generator object per row), and :func:`resize_premultiplied`
resizes cut-outs the source cache already stores premultiplied (PIL's ``RGBa``), which is the exact pixel
result of :func:`resize_object` without its two per-call mode conversions.
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
        """``(y0, x0, y1, x1)``, end exclusive (the layout's ``boxes``)."""
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


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective, well-mixed hash of uint64 words (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of ``(seed, *keys)``: the root of every random draw of one composite.

    Args:
        seed: the recipe seed.
        keys: int arrays of the same shape (e.g. ``o``, ``s``, ``i``); values must be >= 0.

    Returns:
        uint64 array of that shape; equal keys give equal hashes, in any process and any chunking.
    """
    with np.errstate(over="ignore"):
        h = _mix64(np.full(np.shape(keys[0]), int(seed) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64) + _GOLDEN)
        for k in keys:
            h = _mix64(h ^ (np.asarray(k).astype(np.uint64) + _GOLDEN))
    return h


def uniform_ints(h: np.ndarray, draw: int, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
    """Draw number ``draw`` of each row: an integer uniform in ``[lo, hi)`` (``hi > lo``) from row hashes ``h``.

    Lemire's multiply-shift on the top 32 bits of an independent hash word (bias < 2^-32 * (hi - lo)).
    """
    with np.errstate(over="ignore"):
        word = _mix64(h + np.uint64(draw + 1) * _GOLDEN) >> np.uint64(32)
    span = (np.asarray(hi, dtype=np.int64) - np.asarray(lo, dtype=np.int64)).astype(np.uint64)
    return np.asarray(lo, dtype=np.int64) + ((word * span) >> np.uint64(32)).astype(np.int64)


def draw_placements(
    h: np.ndarray, obj_hw: np.ndarray, size: int, size_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`draw_placement`'s rule for many composites at once, drawn from row hashes (:func:`row_hash`).

    Args:
        h: (m,) uint64 row hashes.
        obj_hw: (m, 2) ``(h, w)`` of each object's source crop (the aspect ratio is taken from it).
        size: the scene side S.
        size_range: ``[lo, hi)`` pixels for the larger relative side.

    Returns:
        ``y0, x0, h, w`` int64 arrays (m,): rows ``y0 … y0+h-1``, columns ``x0 … x0+w-1``.
    """
    oh, ow = obj_hw[:, 0].astype(np.int64), obj_hw[:, 1].astype(np.int64)
    lo, hi = size_range
    side = uniform_ints(h, 0, lo, hi)
    wide = ow > oh
    # BAM's int(side / ow * oh), in the same float64 arithmetic.
    w = np.where(wide, side, (side / oh * ow).astype(np.int64))
    hh = np.where(wide, (side / ow * oh).astype(np.int64), side)
    hh, w = np.maximum(hh, 1), np.maximum(w, 1)
    y0 = uniform_ints(h, 1, 0, np.maximum(size - hh, 1))
    x0 = uniform_ints(h, 2, 0, np.maximum(size - w, 1))
    return y0, x0, hh, w


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight RGBA -> premultiplied ``RGBa`` exactly as PIL converts it (what its RGBA resize does first)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgba), "RGBA").convert("RGBa"))


def resize_premultiplied(rgba_p: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize_object` for a cut-out already premultiplied (``RGBa``, as the source cache stores it).

    PIL's RGBA resize is ``convert("RGBa")`` -> bilinear resize -> ``convert("RGBA")``; the first step is done
    once per source in the cache, the last one by :func:`harden` with PIL's integer rule, so the pixels
    equal :func:`resize_object`'s. The builder calls :func:`paste_resized` and :func:`harden` on a whole chunk.

    Args:
        rgba_p: (h0, w0, 4) uint8 premultiplied, C-contiguous.
        h, w: the output shape.

    Returns:
        ``rgb`` (h, w, 3) uint8 and ``mask`` (h, w) bool, as :func:`resize_object`.
    """
    canvas = np.zeros((1, h, w, 4), np.uint8)
    paste_resized(canvas[0], rgba_p, 0, 0, h, w)
    masks = harden(canvas, np.array([[0, 0, h, w]]))
    return np.ascontiguousarray(canvas[0, ..., :3]), masks[0]


def paste_resized(canvas: np.ndarray, rgba_p: np.ndarray, y0: int, x0: int, h: int, w: int) -> None:
    """Resize a premultiplied cut-out to ``(h, w)`` (PIL bilinear) into ``canvas[y0:y0+h, x0:x0+w]``.

    Args:
        canvas: (S, S, 4) uint8 RGBa canvas, zero outside the pastes.
        rgba_p: (h0, w0, 4) uint8 premultiplied cut-out, C-contiguous.
    """
    h0, w0 = rgba_p.shape[:2]
    src = Image.frombuffer("RGBa", (w0, h0), rgba_p, "raw", "RGBa", 0, 1)
    out = src.resize((w, h), Image.BILINEAR).tobytes()
    canvas[y0 : y0 + h, x0 : x0 + w] = np.frombuffer(out, np.uint8).reshape(h, w, 4)


def harden(canvas: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Masks of resized cut-outs on (m, S, S, 4) RGBa canvases; un-premultiplies their RGB in place.

    The mask is alpha >= 128 (alpha > 0 where that would be empty, the box's centre pixel where even that
    is: every composite keeps an object). RGB becomes PIL's ``RGBa -> RGBA`` (``c * 255 // a`` where
    ``0 < a < 255``), vectorised over the chunk: only the thin soft edge changes.

    Args:
        canvas: (m, S, S, 4) uint8, modified in place.
        boxes: (m, 4) ``y0, x0, y1, x1`` of each paste; rows of -1 have none.

    Returns:
        masks (m, S, S) bool.
    """
    m, hh, ww = canvas.shape[:3]
    flat = canvas.reshape(-1, 4)
    alpha = np.ascontiguousarray(flat[:, 3])  # contiguous: the whole-chunk tests below run at memory speed
    masks = (alpha >= 128).reshape(m, hh, ww)
    for r in np.flatnonzero((boxes[:, 0] >= 0) & ~masks.any(axis=(1, 2))):
        y0, x0, y1, x1 = (int(v) for v in boxes[r])
        soft = canvas[r, y0:y1, x0:x1, 3] > 0
        if soft.any():
            masks[r, y0:y1, x0:x1] = soft
        else:
            masks[r, y0 + (y1 - y0) // 2, x0 + (x1 - x0) // 2] = True
    idx = np.flatnonzero((alpha - np.uint8(1)) < 254)  # 0 < alpha < 255 (uint8 wrap-around)
    if idx.size:
        a = alpha[idx].astype(np.uint16)[:, None]
        flat[idx, :3] = np.minimum(flat[idx, :3].astype(np.uint16) * 255 // a, 255).astype(np.uint8)
    return masks


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
