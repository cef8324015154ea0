"""Decoding one source image file into RGB uint8, classifying failures instead of raising (docs/dataset.md#source-formats).

Real COCO/MiniPlaces files include grayscale JPEGs, the odd CMYK or palette image, and files that fail to
decode. The readers want "an RGB array or a reason why not", so the reason can be counted (skips.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bamkit.sources.skips import MISSING, TRUNCATED, UNREADABLE


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a PIL image of any common mode to an ``(H, W, 3)`` uint8 RGB array.

    Grayscale (``L``, ``1``, ``LA``), ``CMYK``, ``YCbCr``, palette (``P``, with or without transparency) and
    ``RGBA`` go through PIL's own conversions (alpha is dropped, as BAM's ``Image.open(...).convert('RGB')``
    does). 16/32-bit integer and float grayscale (``I;16``, ``I``, ``F``) are scaled to 0-255 first, because
    PIL's direct conversion clips them and would turn most 16-bit images white.
    """
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit data are scaled by their range; 8-bit data stored in a wide mode stay as they are.
        if arr.size and arr.max() > 255:
            arr = arr * (255.0 / 65535.0)
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when palette transparency is dropped directly
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def read_rgb(path: str | Path) -> tuple[np.ndarray | None, str]:
    """Read ``path`` fully as RGB.

    Returns:
        ``(rgb, "")`` with ``rgb`` of shape ``(H, W, 3)`` uint8 on success, or ``(None, reason)`` with reason
        ``"missing"`` (no such file), ``"truncated"`` (the data end early) or ``"unreadable"`` (not an image
        or a corrupt one).
    """
    p = Path(path)
    if not p.is_file():
        return None, MISSING
    try:
        with Image.open(p) as img:
            img.load()  # decode now: Image.open only reads the header, truncation shows up here
            return to_rgb(img), ""
    except UnidentifiedImageError:
        return None, UNREADABLE
    except OSError as e:
        return None, TRUNCATED if "truncat" in str(e).lower() else UNREADABLE
    except (SyntaxError, ValueError, Image.DecompressionBombError):
        # PIL's decoders signal some malformed headers with SyntaxError/ValueError.
        return None, UNREADABLE
