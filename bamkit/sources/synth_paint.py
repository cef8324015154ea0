"""How a synthetic COCO object is drawn: :class:`Part` s (polygons in a local frame) coloured by painters that
map the local (u, v) coordinates of an instance's pixels to colours (solid, shaded, blotched, striped, wrinkled
...), placed in the image under a :class:`Pose` (:class:`Placed`). A category is a silhouette plus its texture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bamkit.sources.procedural import polygon_mask

Paint = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class Part:
    """A polygon group in local coordinates with the painter that colours its pixels."""

    polys: list[np.ndarray]
    paint: Paint
    outline: bool = True


def grain(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    """Per-pixel colour noise ``(n, 3)`` float32 (float32 draws: half the cost of float64)."""
    return rng.standard_normal((n, 3), dtype=np.float32) * noise


# -- painters: (u, v) local coordinates of the pixels (1-D) -> (k, 3) float colours ----------------------
def solid(c: np.ndarray, noise: float = 5.0) -> Paint:
    c = np.asarray(c, np.float32)
    return lambda u, v, rng: c + grain(rng, u.size, noise)


def sinus_noise(rng: np.random.Generator, n: int = 6, freq: tuple[float, float] = (2.0, 5.0)):
    """A resolution-independent smooth random field on the local frame: a sum of random plane waves."""
    ang = rng.uniform(0, np.pi, n)
    f = rng.uniform(*freq, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    kx, ky = f * np.cos(ang), f * np.sin(ang)
    return lambda u, v: np.mean(np.sin(np.outer(u, kx) + np.outer(v, ky) + ph), axis=1) * np.sqrt(2.0)


def blotches(c1, c2, field, threshold: float = 0.2, noise: float = 5.0) -> Paint:
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)

    def paint(u, v, rng):
        t = np.clip((field(u, v) - threshold) * 4.0 + 0.5, 0, 1)[:, None]
        return c1 * (1 - t) + c2 * t + grain(rng, u.size, noise)

    return paint


def shaded(c, field, amount: float = 0.15, noise: float = 5.0) -> Paint:
    c = np.asarray(c, np.float32)
    return lambda u, v, rng: c * (1 + amount * field(u, v))[:, None] + grain(rng, u.size, noise)


def vgradient(c_top, c_bottom, v0: float, v1: float, noise: float = 5.0) -> Paint:
    a, b = np.asarray(c_top, np.float32), np.asarray(c_bottom, np.float32)

    def paint(u, v, rng):
        t = np.clip((v - v0) / (v1 - v0), 0, 1)[:, None]
        return a * (1 - t) + b * t + grain(rng, u.size, noise)

    return paint


def stripes(c1, c2, period: float, along_v: bool, wobble: float, phase: float, noise: float = 6.0) -> Paint:
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)

    def paint(u, v, rng):
        a, b = (v, u) if along_v else (u, v)
        s = np.sin(2 * np.pi * (a + wobble * np.sin(3.0 * b + phase)) / period + phase)
        t = np.clip(s * 3.0 + 0.5, 0, 1)[:, None]
        return c1 * (1 - t) + c2 * t + grain(rng, u.size, noise)

    return paint


def quadrants(c1, c2, v_centre: float, noise: float = 4.0) -> Paint:
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)

    def paint(u, v, rng):
        t = ((u > 0) ^ (v > v_centre)).astype(np.float32)[:, None]
        return c1 * (1 - t) + c2 * t + grain(rng, u.size, noise)

    return paint


def pick(rng: np.random.Generator, palette: list[tuple[int, int, int]], jitter: float = 15.0) -> np.ndarray:
    c = np.asarray(palette[int(rng.integers(len(palette)))], np.float32)
    return np.clip(c + rng.uniform(-jitter, jitter, 3), 8, 247)


DARK = (
    28,
    26,
    26,
)  # near-black: BAM's paste makes pure (0,0,0) transparent (docs/dataset.md#object-extraction)


def wrinkled(c, field, period: float, amount: float = 0.4, noise: float = 6.0) -> Paint:
    """Skin with dark wrinkle lines across ``v`` every ``period`` (warped by ``field``) over smooth shading."""
    c = np.asarray(c, np.float32)

    def paint(u, v, rng):
        f = field(u, v)
        w = np.abs(np.sin(np.pi * (v + 0.08 * f) / period))
        dark = amount * np.clip(1.0 - w / 0.35, 0, 1)
        return c * ((1 + 0.15 * f) * (1 - dark))[:, None] + grain(rng, u.size, noise)

    return paint


@dataclass
class Pose:
    """Where and how an instance is drawn: the longer side of its box is ``size`` pixels."""

    size: float
    angle: float  # radians
    flip: bool
    squash: float


class Placed:
    """A category's parts under a pose: image-space polygons relative to the centre, and the box they span."""

    def __init__(self, parts: list[Part], pose: Pose) -> None:
        self.parts, self.pose = parts, pose
        outline = np.concatenate([p for part in parts if part.outline for p in part.polys])
        lo, hi = outline.min(axis=0), outline.max(axis=0)
        self.centre = (lo + hi) / 2
        ext = (hi - lo) * np.array([1.0, pose.squash])
        self.scale = pose.size / float(ext.max())
        c, s = np.cos(pose.angle), np.sin(pose.angle)
        self.rot = np.array([[c, -s], [s, c]])
        self.sign = -1.0 if pose.flip else 1.0
        pts = self.to_image(outline)
        self.lo, self.hi = pts.min(axis=0), pts.max(axis=0)  # box relative to the centre

    def to_image(self, pts: np.ndarray, offset=(0.0, 0.0)) -> np.ndarray:
        q = (pts - self.centre) * np.array([self.sign, self.pose.squash]) * self.scale
        return q @ self.rot.T + np.asarray(offset)

    def to_local(self, x: np.ndarray, y: np.ndarray, offset) -> tuple[np.ndarray, np.ndarray]:
        q = np.stack([x - offset[0], y - offset[1]], axis=1) @ self.rot  # inverse rotation
        q = q / (self.scale * np.array([self.sign, self.pose.squash]))
        return q[:, 0] + self.centre[0], q[:, 1] + self.centre[1]

    def draw(self, canvas: np.ndarray, offset: tuple[float, float], rng: np.random.Generator):
        """Paint onto ``canvas`` ``(H, W, 3)`` float32 at centre ``offset``.

        Returns:
            ``(polygons, mask)``: the outline polygons in image (x, y) coordinates (the COCO segmentation)
            and the ``(H, W)`` bool mask of the drawn silhouette.
        """
        h, w = canvas.shape[:2]
        x0 = max(int(np.floor(offset[0] + self.lo[0])) - 1, 0)
        y0 = max(int(np.floor(offset[1] + self.lo[1])) - 1, 0)
        x1 = min(int(np.ceil(offset[0] + self.hi[0])) + 2, w)
        y1 = min(int(np.ceil(offset[1] + self.hi[1])) + 2, h)
        polygons = [self.to_image(p, offset) for part in self.parts if part.outline for p in part.polys]
        sil = polygon_mask(polygons, y1 - y0, x1 - x0, (x0, y0))
        for part in self.parts:
            m = polygon_mask([self.to_image(p, offset) for p in part.polys], y1 - y0, x1 - x0, (x0, y0)) & sil
            ys, xs = np.nonzero(m)
            if ys.size == 0:
                continue
            u, v = self.to_local(xs + x0 + 0.5, ys + y0 + 0.5, offset)
            canvas[ys + y0, xs + x0] = part.paint(u, v, rng)
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = sil
        return polygons, mask
