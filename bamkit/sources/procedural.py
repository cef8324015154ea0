"""Procedural drawing helpers shared by the synthetic object and scene generators (synth_*.py).

Everything takes an explicit ``numpy.random.Generator``; nothing reads global random state, so the same seed
gives the same pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``(cells+1)²`` grid upsampled bilinearly to ``(h, w)`` float32."""
    cells = max(1, int(cells))
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def fbm(rng: np.random.Generator, h: int, w: int, base_cells: int = 3, octaves: int = 3) -> np.ndarray:
    """Fractal (multi-octave) value noise, zero-mean, roughly in [-0.5, 0.5], float32 ``(h, w)``."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * (value_noise(rng, h, w, base_cells * 2**k) - 0.5)
        total += amp
        amp *= 0.5
    return out / total


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, start: float = 0.0) -> np.ndarray:
    """``(n, 2)`` vertices (x, y) of an ellipse (a regular n-gon when ``rx == ry``)."""
    t = start + np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """``(4, 2)`` vertices of an axis-aligned rectangle."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 5) -> np.ndarray:
    """Vertices of a rectangle with rounded corners of radius ``r`` (``n`` points per corner)."""
    pts = []
    for cx, cy, a0 in (
        (x1 - r, y0 + r, -np.pi / 2),
        (x1 - r, y1 - r, 0.0),
        (x0 + r, y1 - r, np.pi / 2),
        (x0 + r, y0 + r, np.pi),
    ):
        t = a0 + np.linspace(0.0, np.pi / 2, n)
        pts.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))
    return np.concatenate(pts)


def thick_line(points: np.ndarray, width: float) -> np.ndarray:
    """A polyline ``(k, 2)`` widened to a closed polygon of the given width (for tails, trunks, struts)."""
    p = np.asarray(points, dtype=np.float64)
    d = np.gradient(p, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
    return np.concatenate([p + nrm * width / 2, (p - nrm * width / 2)[::-1]])


def polygon_mask(
    polys: list[np.ndarray], h: int, w: int, offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Rasterise the union of polygons (image x, y coordinates) into an ``(h, w)`` bool mask (PIL fill)."""
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    ox, oy = offset
    for poly in polys:
        draw.polygon((np.asarray(poly, np.float64) - (ox, oy)).ravel().tolist(), fill=1)
    return np.asarray(img, dtype=bool)


def jitter_colour(
    rng: np.random.Generator, rgb: tuple[float, float, float], amount: float = 18.0
) -> np.ndarray:
    """A colour with independent uniform jitter of ±``amount`` per channel, clipped to [8, 247].

    Clipping away from 0 keeps synthetic objects free of pure black, which BAM's paste step would make
    transparent (docs/dataset.md#object-extraction).
    """
    c = np.asarray(rgb, dtype=np.float32) + rng.uniform(-amount, amount, 3).astype(np.float32)
    return np.clip(c, 8, 247)


def finish(rng: np.random.Generator, img: np.ndarray, noise: float = 4.0) -> np.ndarray:
    """Float image -> uint8 with Gaussian pixel noise (sensor-like), clipped to [0, 255]."""
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * noise + 0.5  # +0.5: round, not truncate
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)
