"""Synthetic MiniPlaces-style scenes (128×128): one procedural layout per category, seeded variation.

Each BAM scene class has its own colour palette, texture and layout (vertical green stalks for bamboo_forest,
a white slope under sky for ski_slope, a gray strip with a dashed centre line for runway, reddish curved lanes
for track, ...), so a small CNN can name the scene of a composite even when a pasted object covers a third
of it (BAM §3.1). Position, counts, colours, perspective and noise vary per image.

Like real scene categories, some classes overlap: a few corn fields (5 %) are seen from inside the rows (green
stalks and leaves filling the frame, no sky), drawn by the same grove layout as the bamboo forests, which differ
only in how often their stalks show node rings; runways, tracks and ski slopes sometimes have a grove on the
horizon. On top of these, the grove views of :mod:`bamkit.sources.synth_render` make a share of every class
genuinely ambiguous with bamboo forests, which BAM's Figure 2 (bottom) rests on (docs/reproduction.md#published-numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bamkit.sources.procedural import ellipse, fbm, jitter_colour, polygon_mask, rect

S = 128  # MiniPlaces images are 128×128 (docs/dataset.md#source-formats)


def _grid(n: int = S) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    return y / n, x / n  # (row, col) in [0, 1)


def _sky(rng, y, horizon):
    top, bottom = jitter_colour(rng, (95, 150, 215), 15), jitter_colour(rng, (185, 215, 240), 10)
    t = np.clip(y / max(horizon, 1e-3), 0, 1)[..., None]
    return top * (1 - t) + bottom * t


def _stalks(rng, img, y, x, count: int, palette, width, tilt: float, nodes: float, top=(-1.0, -1.0)) -> None:
    """Paint ``count`` near-vertical plant stalks (bamboo culms, corn stems) into ``img`` in place.

    Each stalk is a round-lit stripe of a palette colour; with probability ``nodes`` it carries the dark
    rings of bamboo nodes. ``top`` is the range of the row where a stalk starts (corn stems begin at the
    tassel line; bamboo culms leave the frame). Bamboo forests and corn fields share this texture, which is
    what makes the two classes confusable without the pasted object (BAM Fig. 2 bottom: ~78-93 %).
    """
    for _ in range(count):
        x0, wd, tl = rng.uniform(-0.05, 1.05), rng.uniform(*width), rng.uniform(-tilt, tilt)
        c = jitter_colour(rng, palette[int(rng.integers(len(palette)))], 20)
        d = (x - (x0 + tl * (y - 0.5))) / wd
        m = (np.abs(d) < 0.5) & (y > rng.uniform(*top))
        img[m] = c * (0.75 + 0.35 * np.cos(d[m] * np.pi))[..., None]  # lit in the middle
        if rng.random() < nodes:
            step, ph = rng.uniform(0.14, 0.24), rng.uniform(0, 1)
            img[m & (np.abs(((y + ph) / step) % 1.0 - 0.5) < 0.03)] = c * 0.55


def _leaves(rng, img, count: int, colour, length, droop: float, n: int = S) -> None:
    """Paint ``count`` slanted leaf strokes (thin triangles) of a jittered ``colour`` into ``img``."""
    for _ in range(count):
        cx, cy, ln = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(*length)
        a = rng.uniform(-0.9, 0.9) + (np.pi if rng.random() < 0.5 else 0.0)
        pts = np.array([[cx, cy], [cx + ln * np.cos(a), cy + ln * np.sin(a) + droop]]) * n
        poly = np.array([pts[0] + [0, -1.5], pts[1], pts[0] + [0, 1.5]])
        img[polygon_mask([poly], n, n)] = jitter_colour(rng, colour, 15)


# Stalk colours shared by bamboo and corn (fresh green, yellow-green, dark green), each class favouring some.
_GREENS = [(115, 165, 70), (150, 170, 80), (95, 145, 60), (170, 175, 95)]


def _thicket(rng, n: int, nodes: float, leaf, leaf_len) -> np.ndarray:
    """Dense green stalks in front of dark, shaded foliage: a bamboo grove, or a view into corn rows.

    Both classes draw from this one layout (colours, stalk counts and widths overlap); only the frequency
    of node rings and the leaf colour/length differ, so the scene alone separates them imperfectly.
    """
    y, x = _grid(n)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, [(40, 75, 40), (60, 90, 45), (75, 95, 50)][int(rng.integers(3))], 12)
    img *= (1 + 0.5 * fbm(rng, n, n, 3))[..., None]
    if rng.random() < 0.35:  # light through a gap in the canopy
        gap = (y < rng.uniform(0.1, 0.3)) & (fbm(rng, n, n, 3) > rng.uniform(-0.1, 0.15))
        img[gap] = jitter_colour(rng, (190, 215, 200), 20)
    _stalks(rng, img, y, x, int(rng.integers(6, 14)), _GREENS[:3], (0.025, 0.07), 0.1, nodes)
    _leaves(rng, img, int(rng.integers(4, 14)), leaf, leaf_len, 0.05, n)
    return img


def bamboo_forest(rng, n: int = S):
    return _thicket(rng, n, nodes=0.9, leaf=(60, 120, 45), leaf_len=(0.08, 0.2))


def _tree_line(rng, img, y, top: float, bottom: float, n: int = S) -> None:
    """Replace rows ``top``..``bottom`` (a band along the horizon) by a strip of green grove in place.

    Outdoor scenes with vegetation on the horizon (runway, track, ski slope) then share the bamboo/corn
    stalk texture over part of the frame, as real photographs of those places often show woods behind them.
    """
    band = (y >= top) & (y < bottom)
    img[band] = _thicket(rng, n, nodes=0.5, leaf=(70, 125, 50), leaf_len=(0.08, 0.2))[band]


def bedroom(rng, n: int = S):
    y, x = _grid(n)
    horizon = rng.uniform(0.45, 0.6)
    img = np.empty((n, n, 3), np.float32)
    wall = jitter_colour(
        rng, [(225, 205, 170), (180, 200, 225), (225, 190, 195), (210, 215, 190)][int(rng.integers(4))], 10
    )
    img[:] = wall
    floor = y >= horizon
    wood = jitter_colour(rng, (150, 100, 60), 15)
    img[floor] = wood * (0.85 + 0.15 * np.sin(((y[floor] - horizon) * 60) ** 1.2))[..., None]
    wx = rng.uniform(0.05, 0.6)
    img[polygon_mask([rect(wx * n, 0.1 * n, (wx + 0.3) * n, (horizon - 0.15) * n)], n, n)] = jitter_colour(
        rng, (245, 240, 220), 8
    )
    img[polygon_mask([rect((wx + 0.02) * n, 0.12 * n, (wx + 0.28) * n, (horizon - 0.17) * n)], n, n)] = (
        jitter_colour(rng, (150, 190, 230), 15)
    )
    bx0, bx1 = rng.uniform(0.02, 0.2), rng.uniform(0.8, 0.98)
    top = horizon - rng.uniform(0.12, 0.2)
    img[polygon_mask([rect(bx0 * n, (top - 0.15) * n, bx1 * n, (top + 0.05) * n)], n, n)] = jitter_colour(
        rng, (100, 65, 40), 12
    )
    blanket = jitter_colour(
        rng, [(190, 60, 70), (60, 90, 170), (80, 150, 120), (220, 170, 60)][int(rng.integers(4))], 15
    )
    bed = polygon_mask([rect(bx0 * n, top * n, bx1 * n, 0.95 * n)], n, n)
    img[bed] = blanket * (1 + 0.12 * np.sin(x[bed] * 40))[..., None]
    for px in (bx0 + 0.04, (bx0 + bx1) / 2 + 0.02):
        img[polygon_mask([ellipse((px + 0.14) * n, (top + 0.06) * n, 0.14 * n, 0.05 * n)], n, n)] = (
            jitter_colour(rng, (240, 240, 235), 6)
        )
    return img


def bowling_alley(rng, n: int = S):
    y, x = _grid(n)
    vx, vy = rng.uniform(0.35, 0.65), rng.uniform(0.25, 0.4)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, (35, 30, 45), 10)
    band = (y > vy - 0.08) & (y < vy)
    img[band] = jitter_colour(rng, (230, 220, 200), 10)
    below = y > vy
    a = (x - vx) / np.maximum(y - vy, 1e-3)
    lane_w, off = rng.uniform(0.9, 1.3), rng.uniform(0, 1)
    f = (a / lane_w + off) % 1.0
    wood = jitter_colour(rng, (215, 170, 110), 12)
    planks = 0.9 + 0.1 * np.sin(a * 60)
    img[below] = wood * planks[below][..., None] * (0.75 + 0.35 * y[below])[..., None]
    gutter = below & (f < 0.12)
    img[gutter] = jitter_colour(rng, (55, 55, 60), 8)
    for k in range(-3, 4):  # pins at the end of each lane
        cx = vx + (k - off + 0.56) * lane_w * 0.05
        for j in (-1, 0, 1):
            pin = ellipse((cx + j * 0.012) * n, (vy - 0.02) * n, 0.006 * n + 0.6, 0.02 * n)
            img[polygon_mask([pin], n, n)] = (240, 240, 238)
    return img


def bus_interior(rng, n: int = S):
    y, x = _grid(n)
    vx, vy = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.45)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, (200, 200, 195), 10) * (0.8 + 0.3 * (1 - y))[..., None]
    side = np.abs(x - vx) > 0.06 + 0.6 * np.abs(y - vy)
    windows = side & (y < vy) & (y > vy - 0.35 * np.abs(x - vx) - 0.02)
    img[windows] = jitter_colour(rng, (170, 205, 235), 12)
    d = np.abs(x - vx) / np.maximum(np.abs(y - vy) + 0.05, 1e-3)
    img[windows & ((d * 6) % 1.0 < 0.15)] = (70, 70, 75)
    floor = (y > vy) & ~side
    img[floor] = jitter_colour(rng, (95, 95, 100), 10)
    seat = jitter_colour(rng, [(50, 70, 160), (170, 50, 50), (60, 120, 80)][int(rng.integers(3))], 12)
    depth = np.abs(x - vx) + 0.001
    rows = side & (y > vy - 0.05) & (y < vy + 0.9 * depth)
    pattern = (np.log(depth) * 7) % 1.0 < 0.7
    img[rows & pattern] = seat * (0.85 + 0.25 * ((x[rows & pattern] * 90) % 2 < 1))[..., None]
    img[rows & ~pattern] = seat * 0.5
    rail = (np.abs(y - (vy - 0.42 * np.abs(x - vx) - 0.08)) < 0.008) & side
    img[rail] = (215, 185, 60)
    return img


def cockpit(rng, n: int = S):
    y, x = _grid(n)
    panel_top = rng.uniform(0.42, 0.55)
    img = np.empty((n, n, 3), np.float32)
    img[:] = _sky(rng, y, panel_top)
    for sx in (rng.uniform(0.25, 0.4), rng.uniform(0.6, 0.75)):  # windshield struts
        img[np.abs(x - sx - 0.25 * (panel_top - y)) < 0.025] = (50, 50, 55)
    panel = y > panel_top
    img[panel] = jitter_colour(rng, (48, 50, 55), 8) * (1 + 0.2 * fbm(rng, n, n, 4))[panel][..., None]
    for _ in range(int(rng.integers(8, 15))):
        cx, cy, r = rng.uniform(0.05, 0.95), rng.uniform(panel_top + 0.07, 0.95), rng.uniform(0.035, 0.06)
        img[polygon_mask([ellipse(cx * n, cy * n, r * n, r * n, 16)], n, n)] = (200, 200, 205)
        img[polygon_mask([ellipse(cx * n, cy * n, 0.8 * r * n, 0.8 * r * n, 16)], n, n)] = (25, 28, 32)
        a = rng.uniform(0, 2 * np.pi)
        needle = (
            np.array([[cx, cy], [cx + 0.7 * r * np.cos(a), cy + 0.7 * r * np.sin(a)], [cx + 0.01, cy]]) * n
        )
        img[polygon_mask([needle], n, n)] = (240, 240, 240)
    for _ in range(int(rng.integers(2, 4))):
        cx, cy = rng.uniform(0.05, 0.8), rng.uniform(panel_top + 0.05, 0.85)
        img[polygon_mask([rect(cx * n, cy * n, (cx + 0.14) * n, (cy + 0.09) * n)], n, n)] = jitter_colour(
            rng, [(60, 200, 90), (230, 160, 40)][int(rng.integers(2))], 15
        )
    return img


def corn_field(rng, n: int = S):
    if rng.random() < 0.05:  # inside the rows: stems and leaves fill the frame, no sky, no tassels
        return _thicket(rng, n, nodes=0.2, leaf=(110, 150, 55), leaf_len=(0.12, 0.26))
    y, x = _grid(n)
    horizon = rng.uniform(-0.15, 0.3)  # below 0: a view into the rows without sky
    img = _sky(rng, y, max(horizon, 0.05))
    field = y > horizon
    slope, freq = rng.uniform(-0.6, 0.6), rng.uniform(14, 22)
    leaves = 0.5 + 0.5 * np.sin(2 * np.pi * (x * freq + slope * y * freq * (1 + 0.3 * fbm(rng, n, n, 4))))
    green = jitter_colour(rng, [(95, 140, 45), (60, 95, 45)][int(rng.integers(2))], 12)
    yellow = jitter_colour(rng, [(205, 190, 80), (150, 160, 70)][int(rng.integers(2))], 12)
    t = (leaves * (1.2 - (y - horizon)))[..., None]
    img[field] = (green * (1 - t) + yellow * t)[field] * (0.6 + 0.5 * (1 - y[field]))[..., None]
    if rng.random() < 0.6:  # the nearest row: stems and long arching leaves in front of the field
        top = (horizon, horizon + 0.15)
        _stalks(rng, img, y, x, int(rng.integers(3, 10)), _GREENS[1:], (0.02, 0.05), 0.12, 0.25, top)
        _leaves(rng, img, int(rng.integers(6, 16)), (110, 150, 55), (0.12, 0.28), 0.08, n)
    tassels = field & (y < horizon + 0.12) & (rng.random((n, n)) < 0.25)
    img[tassels] = jitter_colour(rng, (225, 200, 110), 10)
    return img


def laundromat(rng, n: int = S):
    y, x = _grid(n)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, [(225, 225, 210), (190, 215, 230)][int(rng.integers(2))], 10)
    floor_y = rng.uniform(0.72, 0.82)
    fl = y > floor_y
    img[fl] = np.where(
        (((x * 10).astype(int) + (y * 10).astype(int)) % 2 == 0)[fl][..., None],
        jitter_colour(rng, (170, 170, 165), 8),
        jitter_colour(rng, (110, 110, 115), 8),
    )
    size = rng.uniform(0.22, 0.3)
    rows = 2 if rng.random() < 0.5 else 1
    body = jitter_colour(rng, (236, 236, 236), 6)
    x_start = rng.uniform(-0.15, 0.0)
    for r in range(rows):
        top = floor_y - (r + 1) * size
        for k in range(6):
            x0 = x_start + k * (size + 0.01)
            img[polygon_mask([rect(x0 * n, top * n, (x0 + size) * n, (top + size - 0.01) * n)], n, n)] = body
            img[polygon_mask([rect(x0 * n, top * n, (x0 + size) * n, (top + 0.05) * n)], n, n)] = (
                150,
                155,
                160,
            )
            cx, cy, rr = x0 + size / 2, top + size * 0.58, size * 0.33
            img[polygon_mask([ellipse(cx * n, cy * n, rr * n, rr * n, 20)], n, n)] = (120, 125, 130)
            img[polygon_mask([ellipse(cx * n, cy * n, 0.75 * rr * n, 0.75 * rr * n, 20)], n, n)] = (
                jitter_colour(rng, (60, 75, 95), 10)
            )
    return img


def runway(rng, n: int = S):
    y, x = _grid(n)
    horizon = rng.uniform(0.25, 0.42)
    img = _sky(rng, y, horizon)
    ground = y > horizon
    grass = jitter_colour(rng, (95, 130, 65), 15)
    img[ground] = grass * (1 + 0.35 * fbm(rng, n, n, 5))[ground][..., None]
    vx, half = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.5)
    depth = np.maximum(y - horizon, 1e-3)
    lateral = (x - vx) / depth  # straight lines through the vanishing point
    strip = ground & (np.abs(lateral) < half)
    img[strip] = jitter_colour(rng, (105, 105, 108), 10) * (1 + 0.1 * fbm(rng, n, n, 6))[strip][..., None]
    edge = ground & (np.abs(np.abs(lateral) - half * 0.92) < 0.04)
    img[edge] = (225, 225, 220)
    dash = ground & (np.abs(lateral) < 0.035) & ((1.0 / depth * 0.6 + rng.uniform(0, 1)) % 1.0 < 0.5)
    img[dash] = (240, 240, 235)
    if rng.random() < 0.4:  # woods beyond the airfield
        _tree_line(rng, img, y, horizon - rng.uniform(0.15, 0.3), horizon + 0.02, n)
    return img


def ski_slope(rng, n: int = S):
    y, x = _grid(n)
    a, b = rng.uniform(0.2, 0.45), rng.uniform(-0.3, 0.3)
    line = a + b * (x - 0.5)
    img = _sky(rng, y, 0.5)
    snow = y > line
    img[snow] = (
        jitter_colour(rng, (238, 242, 248), 6) * (0.88 + 0.12 * (1 - fbm(rng, n, n, 3)))[snow][..., None]
    )
    for _ in range(int(rng.integers(2, 5))):  # ski tracks
        c, amp, k = rng.uniform(0, 1), rng.uniform(0.02, 0.06), rng.uniform(8, 16)
        tr = snow & (np.abs(x - c - amp * np.sin(y * k)) < 0.006)
        img[tr] = (200, 205, 215)
    for _ in range(int(rng.integers(3, 9))):  # conifers along the ridge
        tx = rng.uniform(0, 1)
        ty = a + b * (tx - 0.5)
        hgt, wd = rng.uniform(0.08, 0.16), rng.uniform(0.03, 0.05)
        tri = np.array([[tx, ty - hgt], [tx + wd, ty + 0.01], [tx - wd, ty + 0.01]]) * n
        img[polygon_mask([tri], n, n)] = jitter_colour(rng, (35, 70, 45), 10)
    for _ in range(int(rng.integers(0, 4))):  # skiers
        sx, sy = rng.uniform(0.1, 0.9), rng.uniform(0.6, 0.95)
        img[polygon_mask([ellipse(sx * n, sy * n, 1.5, 3.0, 8)], n, n)] = jitter_colour(
            rng, (180, 40, 40), 40
        )
    if rng.random() < 0.3:  # a grove below the piste
        _tree_line(rng, img, y, rng.uniform(0.65, 0.8), 1.0, n)
    return img


def track(rng, n: int = S):
    y, x = _grid(n)
    cx, cy = rng.uniform(0.2, 0.8), rng.uniform(-0.6, -0.2)
    sx, sy = rng.uniform(0.9, 1.4), rng.uniform(0.6, 0.9)
    r = np.sqrt(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2)
    # the lanes cover the middle of the frame: infield above, a thin apron below
    width = rng.uniform(0.55, 0.8)
    inner = float(r[int(0.5 * n), int(0.5 * n)]) - width * rng.uniform(0.45, 0.7)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, (70, 140, 60), 12)
    img *= (1 + 0.2 * fbm(rng, n, n, 4))[..., None]
    lanes = (r > inner) & (r < inner + width)
    img[lanes] = jitter_colour(rng, (190, 85, 65), 15) * (1 + 0.12 * fbm(rng, n, n, 8))[lanes][..., None]
    k = rng.integers(5, 8)
    lines = lanes & (np.abs(((r - inner) / width * k) % 1.0 - 0.5) > 0.45)
    img[lines] = (240, 238, 232)
    outside = r >= inner + width
    img[outside] = jitter_colour(rng, (150, 150, 155), 10)  # stands / apron
    if rng.random() < 0.4:  # trees beyond the infield
        _tree_line(rng, img, y, 0.0, rng.uniform(0.15, 0.35), n)
    return img


def abbey(rng, n: int = S):
    y, x = _grid(n)
    img = _sky(rng, y, 0.3)
    roof = rng.uniform(0.15, 0.3)
    stone = jitter_colour(rng, (165, 150, 125), 12)
    wall = y > roof
    img[wall] = stone * (1 + 0.25 * fbm(rng, n, n, 6))[wall][..., None]
    for k in range(4):
        ax = 0.1 + k * 0.23 + rng.uniform(-0.02, 0.02)
        arch = np.concatenate(
            [
                ellipse((ax + 0.06) * n, 0.5 * n, 0.06 * n, 0.08 * n, 12)[6:],
                rect(ax * n, 0.5 * n, (ax + 0.12) * n, 0.8 * n)[[1, 2, 3, 0]],
            ]
        )
        img[polygon_mask([arch], n, n)] = (45, 40, 40)
    return img


def airport_terminal(rng, n: int = S):
    y, x = _grid(n)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, (170, 200, 225), 12) * (1 + 0.1 * fbm(rng, n, n, 2))[..., None]
    step = rng.uniform(0.12, 0.2)
    img[((x / step) % 1.0 < 0.08) | ((y / step) % 1.0 < 0.06)] = (80, 85, 95)
    fl = y > rng.uniform(0.65, 0.8)
    img[fl] = jitter_colour(rng, (190, 190, 185), 8) * (0.9 + 0.2 * y[fl])[..., None]
    return img


def bakery_shop(rng, n: int = S):
    y, x = _grid(n)
    img = np.empty((n, n, 3), np.float32)
    img[:] = jitter_colour(rng, (120, 80, 50), 12)
    for k in range(4):
        sy = 0.2 + 0.22 * k
        img[(y > sy) & (y < sy + 0.025)] = (200, 170, 130)
        for _ in range(int(rng.integers(3, 7))):
            lx = rng.uniform(0.05, 0.95)
            img[polygon_mask([ellipse(lx * n, (sy - 0.05) * n, 0.07 * n, 0.045 * n, 14)], n, n)] = (
                jitter_colour(rng, (190, 130, 60), 20)
            )
    return img


Renderer = Callable[[np.random.Generator], np.ndarray]
# name -> (official MiniPlaces index, renderer). BAM scenes use their real indices (docs/dataset.md#source-formats); the distractors
# are a few other MiniPlaces categories so that readers meet a realistic list (incl. a nested name).
SCENES: dict[str, tuple[int, Renderer]] = {
    "abbey": (0, abbey),
    "airport_terminal": (1, airport_terminal),
    "bakery/shop": (10, bakery_shop),
    "bamboo_forest": (12, bamboo_forest),
    "bedroom": (18, bedroom),
    "bowling_alley": (22, bowling_alley),
    "bus_interior": (25, bus_interior),
    "cockpit": (36, cockpit),
    "corn_field": (40, corn_field),
    "laundromat": (60, laundromat),
    "runway": (81, runway),
    "ski_slope": (84, ski_slope),
    "track/outdoor": (95, track),
}
