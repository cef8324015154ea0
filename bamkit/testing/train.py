"""A tiny BAM-layout HDF5 file for training/verification tests, written through :mod:`bamkit.data.h5`.

Images are synthetic but keep BAM's structure: every object in every scene, the same composite indexed by
``pair_index`` in ``obj_scene``/``scene_only``/``obj_gray``, validation = the last quarter of each pair's
indices (docs/dataset.md#splits), and ``commonality/k*`` sets where the dog is pasted into the first ⌈10k⌉ scene classes only
(docs/dataset.md#sets). Scenes are a class colour under strong per-pixel noise; objects are a class-coloured square; the
gray background is (128, 128, 128) as bamkit's ``obj_gray``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bamkit.classes import BAM_OBJECTS, BAM_SCENES
from bamkit.data.h5_write import create_file, write_set

GRAY = 128


def _palette(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(30, 226, size=(n, 3)).astype(np.float32)


def _scene(rng: np.random.Generator, colour: np.ndarray, size: int, noise: float) -> np.ndarray:
    return np.clip(colour + rng.normal(0, noise, size=(size, size, 3)), 0, 255)


def _paste(img: np.ndarray, rng: np.random.Generator, colour: np.ndarray, side: int):
    size = img.shape[0]
    y0, x0 = rng.integers(0, size - side + 1, size=2)
    out = img.copy()
    out[y0 : y0 + side, x0 : x0 + side] = colour
    mask = np.zeros((size, size), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return out, mask, np.array([y0, x0, y0 + side, x0 + side], np.int32)


def write_tiny_bam(
    path: str | Path,
    size: int = 32,
    per_pair: int = 4,
    k_values: tuple[float, ...] = (0.1, 0.5, 1.0),
    per_scene_k: int = 16,
    seed: int = 0,
    scene_noise: float = 25.0,
) -> Path:
    """Write the tiny file.

    Args:
        path: output ``.h5``.
        size: image side.
        per_pair: images per (object, scene) pair in ``obj_scene``/``scene_only``/``obj_gray``.
        k_values: commonality sets to write (``commonality/k{k}``).
        per_scene_k: images per scene class in each commonality set.
        seed: everything is drawn from it.
        scene_noise: per-pixel noise std of scene textures.

    Returns:
        ``path``.
    """
    rng = np.random.default_rng(seed)
    n_o, n_s = len(BAM_OBJECTS), len(BAM_SCENES)
    obj_col, scene_col = _palette(n_o, rng), _palette(n_s, rng)
    side = max(4, size // 3)
    rows = {k: [] for k in ("comp", "scene", "gray", "mask", "box", "o", "s", "split", "pair")}
    for o in range(n_o):
        for s in range(n_s):
            for i in range(per_pair):
                sc = _scene(rng, scene_col[s], size, scene_noise)
                comp, mask, box = _paste(sc, rng, obj_col[o], side)
                gray = np.where(mask[..., None], comp, GRAY)
                for k, v in (
                    ("comp", comp),
                    ("scene", sc),
                    ("gray", gray),
                    ("mask", mask),
                    ("box", box),
                    ("o", o),
                    ("s", s),
                    ("split", int(i >= math.ceil(per_pair * 0.75))),
                    ("pair", (o * n_s + s) * per_pair + i),
                ):
                    rows[k].append(v)
    u8 = lambda key: np.stack(rows[key]).round().astype(np.uint8)  # noqa: E731
    n = len(rows["o"])
    common = {
        "masks": np.stack(rows["mask"]),
        "boxes": np.stack(rows["box"]),
        "split": np.array(rows["split"], np.uint8),
        "pair_index": np.array(rows["pair"], np.int32),
    }
    o_lab, s_lab, none = (
        np.array(rows["o"], np.int16),
        np.array(rows["s"], np.int16),
        np.full(n, -1, np.int16),
    )
    f = create_file(
        path, list(BAM_OBJECTS), list(BAM_SCENES), size, attrs={"seed": seed, "recipe": "tiny-test"}
    )
    try:
        write_set(
            f,
            "obj_scene",
            {"images": u8("comp"), "object_label": o_lab, "scene_label": s_lab, **common},
            chunk_rows=16,
        )
        write_set(
            f,
            "scene_only",
            {"images": u8("scene"), "object_label": none, "scene_label": s_lab, **common},
            chunk_rows=16,
        )
        write_set(
            f,
            "obj_gray",
            {"images": u8("gray"), "object_label": o_lab, "scene_label": none, **common},
            chunk_rows=16,
        )
        dog = BAM_OBJECTS.index("dog")
        for k in k_values:
            n_dog = math.ceil(round(10 * k, 6))
            imgs, masks, boxes, olab, slab, split = [], [], [], [], [], []
            for s in range(n_s):
                for i in range(per_scene_k):
                    sc = _scene(rng, scene_col[s], size, scene_noise)
                    if s < n_dog:
                        im, m, b = _paste(sc, rng, obj_col[dog], side)
                        olab.append(dog)
                    else:
                        im, m, b = sc, np.zeros((size, size), bool), np.full(4, -1, np.int32)
                        olab.append(-1)
                    imgs.append(im), masks.append(m), boxes.append(b), slab.append(s)
                    split.append(int(i >= math.ceil(per_scene_k * 0.75)))
            m = len(slab)
            write_set(
                f,
                f"commonality/k{k:.1f}",
                {
                    "images": np.stack(imgs).round().astype(np.uint8),
                    "masks": np.stack(masks),
                    "boxes": np.stack(boxes),
                    "object_label": np.array(olab, np.int16),
                    "scene_label": np.array(slab, np.int16),
                    "split": np.array(split, np.uint8),
                    "pair_index": np.full(m, -1, np.int32),
                },
                chunk_rows=16,
            )
    finally:
        f.close()
    return Path(path)


def built_tiny_dataset(root: str | Path) -> Path:
    """``data_recipes/tiny.yaml`` built by the real builder from synthetic sources into ``root`` (once).

    Several test modules share one build per session by passing the same ``root`` (pytest's base temp folder);
    the file is reused when it already exists.
    """
    from bamkit.data.build import build_dataset
    from bamkit.testing.data import make_sources, tiny_recipe

    root = Path(root)
    out = root / "tiny.h5"
    if not out.is_file():
        sources = make_sources(root / "sources", scale="tiny")
        build_dataset(tiny_recipe(sources), out, workers=1)
    return out


# Overrides that shrink any training config to a CPU wiring check (tiny CNN, 32 px, in-process loading).
TINY_TRAIN_OVERRIDES: tuple[str, ...] = (
    "model.arch=small_cnn",
    "model.weights=none",
    "model.input_size=32",
    "model.width=4",
    "trainer.accelerator=cpu",
    "data.num_workers=0",
)
