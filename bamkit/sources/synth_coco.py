"""Synthetic COCO 2017 instances in the real format (docs/dataset.md#source-formats): the ten BAM categories and three distractors with
their real ids; several instances per image (the intended object is the largest of its category, plus smaller
same-category instances and distractors); polygons for single instances, compressed RLE for some of them (as
third-party exports do), uncompressed RLE for ``iscrowd=1`` crowds (larger than the intended object, so a
reader that forgets to skip crowds picks the wrong one); grayscale JPEGs among the RGB ones; sparse image ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bamkit.classes import BAM_OBJECTS
from bamkit.data.pool import ordered_pool
from bamkit.progress import bar
from bamkit.sources.procedural import fbm, finish, jitter_colour, polygon_mask
from bamkit.sources.synth_base import CORRUPT_KINDS, IDS, OBJ, SCALES, SynthScale, jpeg
from bamkit.sources.synth_base import rng as rng_for
from bamkit.sources.synth_objects import CATEGORIES, DISTRACTORS, sample_pose
from bamkit.sources.synth_paint import Placed


@dataclass
class SynthInstance:
    """One annotated instance as drawn: ``mask`` is the rasterised silhouette, the ground truth of tests."""

    category: str
    mask: np.ndarray  # (H, W) bool
    polygons: list[np.ndarray] | None  # outline polygons (x, y) for polygon-encoded instances
    encoding: str  # "polygon" | "rle" | "crowd"
    role: str  # "main" | "small" | "distractor" | "crowd"


@dataclass
class SynthImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    gray: bool
    instances: list[SynthInstance]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a = jitter_colour(rng, (150, 140, 125), 45)
    b = jitter_colour(rng, (110, 120, 130), 45)
    t = (fbm(rng, h, w, 2) + 0.5)[..., None]
    img = a * (1 - t) + b * t
    for _ in range(int(rng.integers(1, 4))):  # clutter: walls, tables, windows
        x0, y0 = int(rng.uniform(-0.2, 0.9) * w), int(rng.uniform(-0.2, 0.9) * h)
        x1, y1 = x0 + int(rng.uniform(0.15, 0.6) * w), y0 + int(rng.uniform(0.15, 0.6) * h)
        img[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = jitter_colour(rng, (140, 135, 130), 60)
    return img.astype(np.float32)


def _overlaps(lo, hi, boxes, margin: float = 2.0) -> bool:
    return any(
        lo[0] < b[2] + margin and b[0] < hi[0] + margin and lo[1] < b[3] + margin and b[1] < hi[1] + margin
        for b in boxes
    )


def _place(rng, placed: Placed, w: int, h: int, boxes: list, region=None, tries: int = 30):
    """A centre that keeps the instance inside ``region`` (x0, y0, x1, y1) and off the other boxes."""
    rx0, ry0, rx1, ry1 = region or (0, 0, w, h)
    for _ in range(tries):
        lo_x, hi_x = rx0 - placed.lo[0] + 1, rx1 - placed.hi[0] - 1
        lo_y, hi_y = ry0 - placed.lo[1] + 1, ry1 - placed.hi[1] - 1
        if hi_x < lo_x or hi_y < lo_y:
            return None
        c = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
        if not _overlaps(c + placed.lo, c + placed.hi, boxes):
            return c
    return None


def render_coco_image(seed: int, category: str | None, index: int) -> SynthImage:
    """Draw synthetic COCO image ``index`` of ``category`` (``None``: a distractor-only image).

    The layout follows ``index``: every 6th image (index % 6 == 3) has a crowd of the category that is
    larger than the intended object, every 5th (index % 5 == 2) stores its intended instance as compressed
    RLE, every 9th (index % 9 == 4) is a grayscale JPEG.
    """
    cid = CATEGORIES[category].coco_id if category else 0
    rng = rng_for(seed, OBJ, cid, index)
    crowd = category is not None and index % 6 == 3
    if crowd:
        w, h = 224, 144
    else:
        w, h = [(192, 144), (176, 176), (160, 128), (208, 160), (144, 192)][int(rng.integers(5))]
    canvas = _background(rng, h, w)
    instances: list[SynthInstance] = []
    boxes: list[tuple[float, float, float, float]] = []

    def draw(name: str, size: float, role: str, encoding: str = "polygon", region=None) -> bool:
        cat = CATEGORIES[name]
        placed = Placed(cat.build(rng), sample_pose(rng, cat, size))
        centre = _place(rng, placed, w, h, boxes, region)
        if centre is None:
            return False
        polygons, mask = placed.draw(canvas, tuple(centre), rng)
        boxes.append((*(centre + placed.lo), *(centre + placed.hi)))
        instances.append(
            SynthInstance(name, mask, polygons if encoding == "polygon" else None, encoding, role)
        )
        return True

    if category is not None:
        side = min(w, h)
        main_size = rng.uniform(0.5, 0.62) * h if crowd else rng.uniform(0.62, 0.85) * side
        region = (0, 0, int(main_size * 1.5), h) if crowd else None
        encoding = "rle" if index % 5 == 2 else "polygon"
        if not draw(category, main_size, "main", encoding, region):
            raise RuntimeError(f"synthetic layout failed for {category} #{index}")  # sizes guarantee a fit
        if crowd:
            x0 = int(boxes[0][2]) + 4
            blob_poly = np.array(
                [
                    [x0 + (w - 2 - x0) * (0.5 + 0.5 * np.cos(t)), h * (0.5 + 0.46 * np.sin(t))]
                    for t in np.linspace(0, 2 * np.pi, 32, endpoint=False)
                ]
            )
            blob = polygon_mask([blob_poly], h, w)
            members = SynthInstance(category, blob, None, "crowd", "crowd")
            region = (x0, 0, w, h)
            for _ in range(int(rng.integers(5, 9))):  # the crowd's members are not annotated one by one
                cat = CATEGORIES[category]
                placed = Placed(cat.build(rng), sample_pose(rng, cat, rng.uniform(0.14, 0.2) * h))
                c = _place(rng, placed, w, h, [], region)
                if c is not None:
                    _, m = placed.draw(canvas, tuple(c), rng)
                    members.mask = members.mask | m
            instances.append(members)
            boxes.append((x0, 0, w, h))
        if rng.random() < 0.6:
            draw(category, main_size * rng.uniform(0.3, 0.5), "small")
    for _ in range(int(rng.integers(1 if category is None else 0, 3))):
        draw(
            DISTRACTORS[int(rng.integers(len(DISTRACTORS)))],
            rng.uniform(0.25, 0.45) * min(w, h),
            "distractor",
        )
    gray = category is not None and index % 9 == 4
    return SynthImage(finish(rng, canvas, noise=3.0), gray, instances)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bool ``(H, W)`` mask: run lengths in column-major order, zeros first.

    This is the *encoding* direction (pycocotools only writes compressed RLE); decoding stays pycocotools'.
    """
    flat = np.asfortranarray(mask).reshape(-1, order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _annotation(inst: SynthInstance, h: int, w: int) -> dict:
    from pycocotools import mask as mask_utils

    if inst.encoding == "polygon":
        seg = [[round(float(v), 2) for v in p.reshape(-1)] for p in inst.polygons]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        xy = np.concatenate(inst.polygons)
        x0, y0 = np.clip(xy.min(axis=0), 0, [w, h])
        x1, y1 = np.clip(xy.max(axis=0), 0, [w, h])
        bbox = [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]
    elif inst.encoding == "rle":
        rle = mask_utils.encode(np.asfortranarray(inst.mask.astype(np.uint8)))
        seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
    else:
        seg = uncompressed_rle(inst.mask)
        rle = mask_utils.frPyObjects(seg, h, w)
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return {
        "segmentation": seg,
        "area": float(mask_utils.area(rle)),
        "iscrowd": int(inst.encoding == "crowd"),
        "bbox": bbox,
        "category_id": CATEGORIES[inst.category].coco_id,
    }


def coco_plan(
    scale: str | SynthScale, seed: int = 0, corrupt: int = 0
) -> list[tuple[int, str | None, int, str]]:
    """What each synthetic COCO image is: ``(image_id, category or None, index, corruption kind or "")``.

    ``render_coco_image(seed, category, index)`` redraws the image with its ground-truth masks, which is how
    tests compare what pycocotools decodes with what was drawn.
    """
    sizes = SCALES[scale] if isinstance(scale, str) else scale
    # Corrupt items are extra images, so the usable count per category stays exactly objects_per_class.
    plan: list[tuple[str | None, int, str]] = [
        (name, i, "") for name in BAM_OBJECTS for i in range(sizes.objects_per_class)
    ]
    plan += [(None, i, "") for i in range(sizes.distractor_images)]
    for j, kind in enumerate(k for k in CORRUPT_KINDS for _ in range(corrupt)):
        plan.append((BAM_OBJECTS[j % len(BAM_OBJECTS)], sizes.objects_per_class + j, kind))
    # Sparse image ids in an order unrelated to the plan, as in real COCO (readers must sort them).
    ids = rng_for(seed, IDS).choice(np.arange(1, 40 * len(plan) + 1000), size=len(plan), replace=False)
    return [(int(i), name, index, kind) for i, (name, index, kind) in zip(ids.tolist(), plan)]


def render_coco_file(task: tuple[int, str | None, int]) -> tuple[int, int, list[dict], bytes]:
    """``(seed, category, index)`` -> the image's height, width, annotations (without ids) and JPEG bytes: one
    image's work, run in a worker process (every image has its own random stream, so the files do not depend on
    which process draws them)."""
    seed, name, index = task
    synth = render_coco_image(seed, name, index)
    h, w = synth.rgb.shape[:2]
    return h, w, [_annotation(inst, h, w) for inst in synth.instances], jpeg(synth.rgb, synth.gray)


def write_coco(
    root: Path, final: Path, scale: SynthScale, seed: int, corrupt: int, summary: dict, workers: int = 1
) -> None:
    """Write the COCO tree under ``root`` (a temporary folder that becomes ``final``), the images drawn by
    ``workers`` processes (the same bytes for any number)."""
    images_dir = root / "train2017"
    images_dir.mkdir(parents=True)
    plan = coco_plan(scale, seed, corrupt)
    images, annotations = [], []
    corrupted: dict[str, list[str]] = {k: [] for k in CORRUPT_KINDS}
    with ordered_pool(workers) as pool:
        drawn = pool.map(render_coco_file, ((seed, name, index) for _, name, index, _ in plan))
        for (image_id, _, _, kind), (h, w, anns, data) in zip(
            plan, bar(drawn, total=len(plan), desc="synth COCO", unit="img"), strict=True
        ):
            file_name = f"{image_id:012d}.jpg"
            images.append(
                {
                    "license": 1,
                    "file_name": file_name,
                    "coco_url": "",
                    "height": h,
                    "width": w,
                    "date_captured": "2017-01-01 00:00:00",
                    "flickr_url": "",
                    "id": image_id,
                }
            )
            for ann in anns:
                annotations.append({**ann, "image_id": image_id, "id": len(annotations) + 1})
            if kind:
                corrupted[kind].append(file_name)
            if kind == "missing":
                continue
            if kind == "truncated":
                data = data[: len(data) // 2]
            elif kind == "not_image":
                data = b"<html><body>404 Not Found</body></html>\n"
            (images_dir / file_name).write_bytes(data)
    categories = [
        {"supercategory": c.supercategory, "id": c.coco_id, "name": c.name}
        for c in sorted(CATEGORIES.values(), key=lambda c: c.coco_id)
    ]
    dataset = {
        "info": {
            "description": "bamkit synthetic COCO-format sources",
            "url": "",
            "version": "1.0",
            "year": 2017,
            "contributor": "bamkit",
            "date_created": "2017/09/01",
        },
        "licenses": [{"url": "", "id": 1, "name": "synthetic, no restrictions"}],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    ann_path = root / "annotations" / "instances_train2017.json"
    ann_path.parent.mkdir(parents=True)
    ann_path.write_text(json.dumps(dataset, separators=(",", ":")), encoding="utf-8")
    summary["coco"] = {
        "annotations": str(final / ann_path.relative_to(root)),
        "images": str(final / images_dir.relative_to(root)),
        "n_images": len(images),
        "n_annotations": len(annotations),
        "objects_per_class": scale.objects_per_class,
        "corrupt": corrupted,
    }
