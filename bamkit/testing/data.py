"""Test helpers for the dataset builder: small real-format sources and a tiny built file.

:func:`make_sources` uses the sources engineer's ``bamkit.sources.synth.write_sources`` when it is installed
and otherwise writes a minimal tree in the same real formats (a COCO instances JSON with polygon
segmentations + JPEGs, and the official MiniPlaces layout with ``categories.txt`` / ``train.txt``), so the
builder is always exercised through the real readers (pycocotools, PIL), never through mocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bamkit.classes import BAM_OBJECTS, BAM_SCENES, COCO_IDS, MINIPLACES_IDS


def _write_fallback(out: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    coco = out / "coco"
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    (coco / "train2017").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    img_id, ann_id = 1, 1
    for name in BAM_OBJECTS:
        colour = tuple(int(c) for c in rng.integers(30, 255, 3))
        for _ in range(per_class):
            h, w = int(rng.integers(36, 60)), int(rng.integers(36, 60))
            bg = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            im = Image.fromarray(bg)
            cx, cy = w / 2, h / 2
            rx, ry = w * rng.uniform(0.2, 0.45), h * rng.uniform(0.2, 0.45)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
            poly = [(float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in angles]
            ImageDraw.Draw(im).polygon(poly, fill=colour)
            fname = f"{img_id:012d}.jpg"
            im.save(coco / "train2017" / fname, quality=95)
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            images.append({"id": img_id, "file_name": fname, "height": h, "width": w})
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img_id,
                    "category_id": COCO_IDS[name],
                    "iscrowd": 0,
                    "segmentation": [[v for p in poly for v in p]],
                    "bbox": bbox,
                    "area": float(bbox[2] * bbox[3] / 2),
                }
            )
            img_id += 1
            ann_id += 1
    cats = [
        {"id": cid, "name": n, "supercategory": "x"}
        for n, cid in sorted(COCO_IDS.items(), key=lambda t: t[1])
    ]
    (coco / "annotations" / "instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    mp = out / "miniplaces"
    lines_cat, lines_train = [], []
    for name in BAM_SCENES:
        idx = MINIPLACES_IDS[name]
        lines_cat.append(f"/{name[0]}/{name} {idx}")
        folder = mp / "images" / "train" / name[0] / name
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        for k in range(per_class):
            arr = np.clip(base + rng.normal(0, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{k + 1:08d}.jpg", quality=95)
            lines_train.append(f"train/{name[0]}/{name}/{k + 1:08d}.jpg {idx}")
    (mp / "categories.txt").write_text("\n".join(lines_cat) + "\n")
    (mp / "train.txt").write_text("\n".join(lines_train) + "\n")


def make_sources(out: str | Path, scale: str = "tiny", seed: int = 0, corrupt: int = 0) -> Path:
    """Write real-format synthetic sources into ``out`` (``coco/`` and ``miniplaces/``); returns ``out``.

    ``corrupt`` adds bad files (missing, truncated, not an image) when the sources engineer's writer is there.
    """
    out = Path(out)
    try:
        from bamkit.sources.synth import write_sources
    except ImportError:
        _write_fallback(out, per_class=12 if scale == "tiny" else 72, seed=seed)
    else:
        write_sources(out, scale=scale, seed=seed, corrupt=corrupt)
    return out


def tiny_recipe(sources: str | Path, **overrides):
    """``data_recipes/tiny.yaml`` pointed at ``sources`` (see :func:`make_sources`), with overrides."""
    from bamkit.data.recipe import load_recipe
    from bamkit.paths import shipped

    return load_recipe(shipped("data_recipes/tiny.yaml"), root=str(sources), **overrides)


def red_detector(images: list, objects: list[str]) -> np.ndarray:
    """A stand-in scene-filter detector for tests: scores every object 1.0 on images whose mean red > 150."""
    red = np.array([float(np.asarray(im)[..., 0].mean()) for im in images])
    return np.repeat((red > 150).astype(np.float64)[:, None], len(objects), axis=1)
