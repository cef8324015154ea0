"""Synthetic COCO-style object instances: one silhouette + texture per category, seeded variation.

Each category is a list of :class:`Part` s in a local unit frame (u to the right, v down, about [-1, 1]).
*Outline* parts make up the instance's silhouette, which is also its COCO segmentation (one polygon per
part; pycocotools merges them). *Decoration* parts (windows, spots, bands) only change colours inside it.
The ten BAM objects differ in silhouette and texture (a red octagon with a white band, a spotted disc, a
striped horse shape, a two-coloured diamond with a tail, ...) so that a small CNN can tell them apart after
BAM's paste step shrinks them to ~40 px (BAM §3.1); distractor categories (person, car, chair) populate the
images as in real COCO photographs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bamkit.sources.procedural import ellipse, rect, rounded_rect, thick_line
from bamkit.sources.synth_paint import (
    DARK,
    Part,
    Pose,
    blotches,
    pick,
    quadrants,
    shaded,
    sinus_noise,
    solid,
    stripes,
    vgradient,
    wrinkled,
)


# -- the categories -------------------------------------------------------------------------------------
def _backpack(rng):
    c = pick(rng, [(40, 60, 140), (170, 40, 40), (40, 120, 60), (110, 50, 130), (220, 120, 30), (60, 60, 70)])
    weave = sinus_noise(rng, 4, (18.0, 26.0))
    return [
        Part(
            [
                thick_line(
                    np.array([[-0.2, -0.66], [-0.15, -0.88], [0, -0.95], [0.15, -0.88], [0.2, -0.66]]), 0.09
                )
            ],
            solid(c * 0.6),
        ),
        Part([rounded_rect(-0.55, -0.72, 0.55, 0.9, 0.25)], shaded(c, weave, 0.08)),
        Part([rounded_rect(-0.4, 0.15, 0.4, 0.78, 0.12)], solid(c * 0.72), outline=False),
        Part(
            [
                rect(-0.36, 0.11, 0.36, 0.16),
                thick_line(np.array([[-0.45, -0.3], [0, -0.4], [0.45, -0.3]]), 0.05),
            ],
            solid((200, 200, 200)),
            outline=False,
        ),
    ]


def _bird(rng):
    c = pick(rng, [(60, 110, 190), (130, 90, 50), (190, 50, 40), (215, 185, 40), (110, 115, 125)])
    belly = pick(rng, [(225, 215, 190), (240, 235, 225)])
    orange = (230, 150, 30)
    return [
        Part([np.array([[-0.5, 0.0], [-1.05, -0.15], [-1.0, 0.3]])], solid(c * 0.7)),
        Part(
            [
                thick_line(np.array([[0.0, 0.35], [0.05, 0.72]]), 0.05),
                thick_line(np.array([[0.18, 0.35], [0.22, 0.72]]), 0.05),
            ],
            solid(orange),
        ),
        Part([ellipse(0.0, 0.08, 0.6, 0.36, 28)], vgradient(c, belly, 0.0, 0.4)),
        Part([ellipse(0.55, -0.28, 0.26, 0.24)], solid(c)),
        Part([np.array([[0.76, -0.36], [1.02, -0.26], [0.76, -0.17]])], solid(orange)),
        Part(
            [ellipse(-0.1, 0.02, 0.4, 0.19)],
            stripes(c * 0.55, c * 0.8, 0.12, False, 0.03, rng.uniform(0, 6)),
            outline=False,
        ),
        Part([ellipse(0.63, -0.33, 0.05, 0.05, 8)], solid(DARK), outline=False),
    ]


def _dog(rng):
    c1, c2 = [
        (np.asarray(a, np.float32), np.asarray(b, np.float32))
        for a, b in [
            [(140, 90, 50), (210, 170, 120)],
            [(45, 40, 40), (230, 228, 222)],
            [(200, 150, 70), (235, 210, 160)],
            [(110, 110, 115), (225, 225, 225)],
        ]
    ][int(rng.integers(4))]
    fur = blotches(c1, c2, sinus_noise(rng, 5, (2.5, 5.0)), threshold=rng.uniform(0.0, 0.5))
    legs = [rect(x, 0.12, x + 0.13, 0.78) for x in (-0.48, -0.3, 0.24, 0.42)]
    return [
        Part([thick_line(np.array([[-0.6, -0.05], [-0.8, -0.3], [-0.88, -0.52]]), 0.09)], fur),
        Part(legs, fur),
        Part([ellipse(0.0, 0.0, 0.65, 0.3, 28)], fur),
        Part([np.array([[0.35, -0.12], [0.55, -0.47], [0.78, -0.36], [0.6, 0.06]])], fur),
        Part([ellipse(0.7, -0.47, 0.22, 0.19)], fur),
        Part([ellipse(0.92, -0.4, 0.15, 0.09)], solid(c2)),
        Part([ellipse(1.04, -0.42, 0.045, 0.04, 8)], solid(DARK), outline=False),
        Part([ellipse(0.58, -0.42, 0.08, 0.18, 12)], solid(c1 * 0.6), outline=False),
        Part([ellipse(0.76, -0.53, 0.035, 0.035, 8)], solid(DARK), outline=False),
    ]


def _elephant(rng):
    # Real elephant skin is a warm, often muddy brown-gray with deep wrinkles, not a flat mid-gray: a flat
    # gray skin would make BAM's uniform gray background (X_{o,g}, RGB 128) read as "elephant" (docs/dataset.md#sets).
    g = pick(rng, [(128, 114, 102), (110, 100, 96), (142, 124, 106), (120, 108, 92)], 10)
    field = sinus_noise(rng, 8, (6.0, 12.0))
    skin = wrinkled(g, field, rng.uniform(0.05, 0.08))
    return [
        Part([rect(x, 0.05, x + 0.2, 0.88) for x in (-0.58, -0.32, 0.12, 0.36)], skin),
        Part([ellipse(0.0, -0.05, 0.72, 0.45, 32)], shaded(g, field, 0.2)),
        Part([ellipse(0.68, -0.25, 0.3, 0.3)], skin),
        Part([thick_line(np.array([[0.88, -0.2], [1.0, 0.1], [1.0, 0.45], [0.9, 0.72]]), 0.15)], skin),
        Part([np.array([[0.84, 0.0], [1.08, 0.22], [0.84, 0.11]])], solid((235, 228, 205))),
        Part(
            [ellipse(0.5, -0.18, 0.24, 0.34)],
            wrinkled(g * 0.82, sinus_noise(rng, 6, (8.0, 14.0)), 0.09, 0.3),
            outline=False,
        ),
        Part([ellipse(0.8, -0.35, 0.035, 0.035, 8)], solid(DARK), outline=False),
    ]


def _kite(rng):
    a, b = [
        ((215, 40, 40), (245, 210, 40)),
        ((40, 80, 200), (245, 140, 30)),
        ((40, 170, 70), (210, 50, 170)),
        ((120, 50, 170), (60, 200, 220)),
    ][int(rng.integers(4))]
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    tail = np.array([[0.0, 0.74], [0.1, 0.95], [-0.06, 1.15], [0.12, 1.35], [0.0, 1.55]])
    bows = [
        np.array([[x - 0.1, y - 0.06], [x + 0.1, y + 0.06], [x + 0.1, y - 0.06], [x - 0.1, y + 0.06]])
        for x, y in tail[1:]
    ]
    return [
        Part([thick_line(tail, 0.045)], solid((60, 55, 50))),
        Part(bows[0::2], solid(a)),
        Part(bows[1::2], solid(b)),
        Part([np.array([[0, -1.0], [0.62, -0.25], [0, 0.75], [-0.62, -0.25]])], quadrants(a, b, -0.25)),
        Part(
            [rect(-0.02, -0.98, 0.02, 0.73), rect(-0.6, -0.27, 0.6, -0.23)],
            solid((70, 55, 40)),
            outline=False,
        ),
    ]


def _pizza(rng):
    cheese = shaded((238, 192, 85), sinus_noise(rng, 7, (6.0, 12.0)), 0.1)
    parts = [
        Part([ellipse(0, 0, 1.0, 1.0, 40)], solid((196, 135, 68), 7)),
        Part([ellipse(0, 0, 0.82, 0.82, 40)], cheese, outline=False),
    ]
    spots = []
    for _ in range(int(rng.integers(6, 11))):
        r, t = 0.68 * np.sqrt(rng.uniform(0.02, 1)), rng.uniform(0, 2 * np.pi)
        spots.append(ellipse(r * np.cos(t), r * np.sin(t), *(2 * [rng.uniform(0.1, 0.15)]), 14))
    parts.append(Part(spots, shaded((175, 45, 32), sinus_noise(rng, 4, (15.0, 25.0)), 0.15), outline=False))
    t0 = rng.uniform(0, np.pi)
    cuts = [
        thick_line(
            np.array([[-0.8 * np.cos(t), -0.8 * np.sin(t)], [0.8 * np.cos(t), 0.8 * np.sin(t)]]), 0.025
        )
        for t in (t0, t0 + np.pi / 3, t0 + 2 * np.pi / 3)
    ]
    parts.append(Part(cuts, solid((205, 150, 70)), outline=False))
    return parts


def _stop_sign(rng):
    red, white = (200, 28, 36), (238, 238, 236)
    o = np.pi / 8
    letters = [rect(x, -0.2, x + 0.26, 0.2) for x in (-0.62, -0.31, 0.0, 0.31)]
    holes = [
        rect(0.06, -0.11, 0.2, 0.11),
        rect(0.37, -0.1, 0.51, -0.02),
        rect(0.37, 0.04, 0.57, 0.2),
        rect(-0.62, -0.09, -0.44, -0.03),
        rect(-0.54, 0.03, -0.36, 0.09),
        rect(-0.31, -0.1, -0.22, 0.2),
        rect(-0.14, -0.1, -0.05, 0.2),
    ]
    return [
        Part([rect(-0.07, 0.9, 0.07, 2.0)], vgradient((160, 160, 165), (120, 120, 125), 0.9, 2.0)),
        Part([ellipse(0, 0, 1.0, 1.0, 8, o)], solid(red)),
        Part([ellipse(0, 0, 0.9, 0.9, 8, o)], solid(white), outline=False),
        Part(
            [ellipse(0, 0, 0.82, 0.82, 8, o)],
            shaded(red, sinus_noise(rng, 3, (2.0, 4.0)), 0.08),
            outline=False,
        ),
        Part(letters, solid(white), outline=False),
        Part(holes, solid(red), outline=False),
    ]


def _toilet(rng):
    base = pick(rng, [(236, 236, 232), (240, 232, 215), (215, 228, 238)], 6)
    porcelain = shaded(base, lambda u, v: np.cos(u * 2.2) - 0.6, 0.12, 4)
    return [
        Part([rounded_rect(-0.5, -1.0, 0.5, -0.34, 0.06)], porcelain),
        Part(
            [
                ellipse(0, -0.2, 0.62, 0.22, 28),
                np.array([[-0.6, -0.2], [0.6, -0.2], [0.36, 0.36], [-0.36, 0.36]]),
            ],
            porcelain,
        ),
        Part([np.array([[-0.25, 0.3], [0.25, 0.3], [0.33, 0.86], [-0.33, 0.86]])], porcelain),
        Part([ellipse(0, -0.22, 0.55, 0.17, 28)], solid(base * 0.82), outline=False),
        Part([ellipse(0, -0.22, 0.38, 0.09, 24)], solid((150, 170, 185)), outline=False),
        Part([rect(0.28, -0.9, 0.42, -0.84)], solid((175, 180, 185)), outline=False),
    ]


def _truck(rng):
    palette = [(225, 225, 220), (190, 40, 35), (40, 80, 170), (230, 190, 40), (50, 130, 60), (230, 120, 30)]
    box, cab = pick(rng, palette), pick(rng, palette)
    panels = stripes(box, box * 0.8, 0.22, False, 0.0, 0.0, 4)
    wheels = [ellipse(x, 0.52, 0.17, 0.17, 20) for x in (-0.72, -0.38, 0.64)]
    hubs = [ellipse(x, 0.52, 0.07, 0.07, 12) for x in (-0.72, -0.38, 0.64)]
    return [
        Part([rect(-1.0, -0.62, 0.28, 0.42)], panels),
        Part([np.array([[0.3, -0.3], [0.7, -0.3], [0.95, 0.05], [0.95, 0.42], [0.3, 0.42]])], solid(cab)),
        Part(
            [np.array([[0.42, -0.22], [0.66, -0.22], [0.84, 0.03], [0.42, 0.03]])],
            solid((150, 190, 220)),
            outline=False,
        ),
        Part([rect(-1.0, 0.38, 0.95, 0.5)], solid((60, 60, 64))),
        Part(wheels, solid((38, 36, 38))),
        Part(hubs, solid((160, 160, 165)), outline=False),
    ]


def _zebra(rng):
    white, black = (236, 234, 228), DARK
    period, ph = rng.uniform(0.11, 0.15), rng.uniform(0, 6)
    body = stripes(black, white, period, False, 0.04, ph)
    legs = stripes(black, white, period * 0.8, True, 0.0, ph)
    return [
        Part([rect(x, 0.1, x + 0.11, 0.86) for x in (-0.5, -0.34, 0.3, 0.46)], legs),
        Part([thick_line(np.array([[-0.68, -0.1], [-0.82, 0.2], [-0.85, 0.42]]), 0.05)], solid(black)),
        Part([ellipse(0, -0.05, 0.7, 0.3, 28)], body),
        Part([np.array([[0.4, -0.2], [0.62, -0.7], [0.82, -0.62], [0.68, 0.0]])], body),
        Part(
            [np.array([[0.68, -0.8], [0.86, -0.86], [1.12, -0.42], [1.06, -0.3], [0.9, -0.34]])],
            stripes(black, white, period * 0.7, True, 0.0, ph),
        ),
        Part(
            [thick_line(np.array([[0.45, -0.25], [0.64, -0.72], [0.74, -0.82]]), 0.06)],
            solid(black),
            outline=False,
        ),
        Part([ellipse(1.06, -0.36, 0.07, 0.06, 10)], solid((50, 45, 45)), outline=False),
    ]


def _person(rng):
    skin = pick(rng, [(230, 190, 160), (190, 140, 100), (120, 80, 55)], 8)
    shirt = pick(rng, [(200, 60, 60), (60, 90, 180), (230, 230, 230), (70, 140, 80), (240, 200, 60)])
    pants = pick(rng, [(40, 50, 90), (70, 70, 75), (120, 90, 60)])
    return [
        Part(
            [
                thick_line(np.array([[-0.3, -0.5], [-0.42, 0.1]]), 0.11),
                thick_line(np.array([[0.3, -0.5], [0.42, 0.1]]), 0.11),
            ],
            solid(shirt * 0.9),
        ),
        Part([rect(-0.25, 0.18, -0.03, 1.0), rect(0.03, 0.18, 0.25, 1.0)], solid(pants)),
        Part([rounded_rect(-0.28, -0.6, 0.28, 0.22, 0.08)], solid(shirt)),
        Part([ellipse(0, -0.8, 0.17, 0.19, 16)], solid(skin)),
    ]


def _car(rng):
    c = pick(rng, [(180, 30, 30), (30, 60, 150), (200, 200, 205), (40, 40, 45), (90, 130, 90)])
    body = np.array(
        [
            [-1, 0.0],
            [-0.95, -0.2],
            [-0.45, -0.25],
            [-0.25, -0.5],
            [0.35, -0.5],
            [0.6, -0.22],
            [1.0, -0.15],
            [1.0, 0.15],
            [-1, 0.15],
        ]
    )
    return [
        Part([body], vgradient(c * 1.1, c * 0.8, -0.5, 0.15)),
        Part(
            [
                np.array([[-0.2, -0.44], [0.05, -0.44], [0.05, -0.25], [-0.38, -0.25]]),
                np.array([[0.12, -0.44], [0.32, -0.44], [0.5, -0.25], [0.12, -0.25]]),
            ],
            solid((140, 170, 195)),
            outline=False,
        ),
        Part([ellipse(x, 0.15, 0.18, 0.18, 18) for x in (-0.6, 0.6)], solid((35, 35, 38))),
    ]


def _chair(rng):
    wood = pick(rng, [(120, 75, 40), (160, 110, 60), (90, 60, 40)], 10)
    grain = stripes(wood, wood * 0.8, 0.09, False, 0.02, rng.uniform(0, 6), 4)
    return [
        Part([rect(-0.42, -1.0, 0.42, -0.1)], grain),
        Part([rect(-0.5, -0.1, 0.5, 0.08)], solid(wood * 1.1)),
        Part([rect(x, 0.08, x + 0.08, 0.9) for x in (-0.48, -0.3, 0.22, 0.4)], solid(wood * 0.85)),
    ]


@dataclass(frozen=True)
class Category:
    """A synthetic category: its real COCO id and supercategory, silhouette builder and pose ranges."""

    name: str
    coco_id: int
    supercategory: str
    build: Callable[[np.random.Generator], list[Part]]
    max_rotation: float = 15.0  # degrees either way
    flip: bool = True  # mirror half of the instances
    squash: tuple[float, float] = (1.0, 1.0)  # vertical scale range (pizzas are seen in perspective)


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in [
        Category("person", 1, "person", _person, 8.0),
        Category("car", 3, "vehicle", _car, 6.0),
        Category("truck", 8, "vehicle", _truck, 6.0),
        Category("stop sign", 13, "outdoor", _stop_sign, 10.0, flip=False),
        Category("bird", 16, "animal", _bird, 20.0),
        Category("dog", 18, "animal", _dog, 12.0),
        Category("elephant", 22, "animal", _elephant, 8.0),
        Category("zebra", 24, "animal", _zebra, 10.0),
        Category("backpack", 27, "accessory", _backpack, 15.0),
        Category("kite", 38, "sports", _kite, 30.0),
        Category("pizza", 59, "food", _pizza, 25.0, squash=(0.6, 1.0)),
        Category("chair", 62, "furniture", _chair, 6.0),
        Category("toilet", 70, "furniture", _toilet, 5.0, flip=False),
    ]
}
DISTRACTORS = ("person", "car", "chair")


def sample_pose(rng: np.random.Generator, cat: Category, size: float) -> Pose:
    return Pose(
        size=size,
        angle=np.deg2rad(rng.uniform(-cat.max_rotation, cat.max_rotation)),
        flip=bool(cat.flip and rng.random() < 0.5),
        squash=float(rng.uniform(*cat.squash)),
    )
