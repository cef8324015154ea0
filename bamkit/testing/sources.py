"""Small real-format source fixtures for tests: hand-made COCO files with known answers, folder-per-class
scene trees, bad files, and a per-process cache of generated synthetic trees.

Everything here writes genuine files (JSON, JPEG, PNG) that pycocotools and PIL read for real; nothing is
mocked. Geometry is chosen so the expected masks, areas and colours have closed forms.
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bamkit.sources.synth_coco import uncompressed_rle

_CACHE: dict[tuple, Path] = {}
_CACHE_ROOT: Path | None = None


def cached_synth(scale: str = "tiny", seed: int = 0, corrupt: int = 0) -> Path:
    """A synthetic source tree (``write_sources``) generated once per process and shared by tests.

    Treat it as read-only; use :func:`bamkit.sources.synth.write_sources` on a ``tmp_path`` to modify one.
    """
    global _CACHE_ROOT
    key = (scale, seed, corrupt)
    if key not in _CACHE:
        from bamkit.sources.synth import write_sources

        if _CACHE_ROOT is None:
            _CACHE_ROOT = Path(tempfile.mkdtemp(prefix="bamkit-synth-"))
            atexit.register(shutil.rmtree, _CACHE_ROOT, True)
        out = _CACHE_ROOT / f"{scale}-{seed}-{corrupt}"
        write_sources(out, scale=scale, seed=seed, corrupt=corrupt)
        _CACHE[key] = out
    return _CACHE[key]


# -- bad files --------------------------------------------------------------------------------------------
def write_truncated_jpeg(path: str | Path, size: tuple[int, int] = (32, 24), keep: float = 0.5) -> Path:
    """A valid JPEG cut to ``keep`` of its bytes (PIL reads the header, decoding fails as truncated)."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data[: int(len(data) * keep)])
    return p


def write_not_image(path: str | Path) -> Path:
    """A text file with an image's name (as left behind by a failed download)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"<html>404 Not Found</html>\n")
    return p


# -- a hand-made COCO file with known answers -------------------------------------------------------------
def _save(img: Image.Image, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def write_coco_fixture(root: str | Path) -> dict:
    """Write ``root/annotations.json`` and ``root/images/`` with cases whose answers are known.

    Categories (real COCO ids): dog 18, stop sign 13, person 1. Images (W×H = 40×30 unless noted):

    * 101 ``rgb.png``: dog A = polygon rectangle x∈[4,20), y∈[6,22) (area 256); dog B = rectangle
      x∈[24,30), y∈[2,8) (area 36); a dog crowd (uncompressed RLE) covering x∈[20,40), y∈[10,30) (area 400,
      larger than A and must be ignored); a person. Expected choice for dog: A.
    * 102 ``gray.jpg`` (mode L, value 100): dog as compressed RLE, rectangle x∈[10,30), y∈[5,25) (area 400).
    * 103 ``cmyk.jpg`` (CMYK): dog polygon with ``bbox`` running past the image edge (clip test).
    * 104 ``palette.png`` (P): stop sign polygon, palette colour (10, 200, 30) inside the sign.
    * 105 ``rgba.png`` (RGBA): dog; 106 ``gray16.png`` (I;16, value 32896 -> 128): dog.
    * 107 ``crowd_only.png``: only a crowd dog (counted "crowd", not a candidate).
    * 108 ``tiny.png``: a 2×2 dog (area 4; excluded with min_area > 4, counted "small").
    * 109 ``missing.jpg`` (no file), 110 ``truncated.jpg``, 111 ``not_image.jpg``: one dog each.

    Returns:
        ``{"annotations": Path, "images": Path, "expected": {...}}`` with the expected choices/areas.
    """
    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    w, h = 40, 30
    imgs, anns = [], []

    def image(image_id: int, name: str, width: int = w, height: int = h) -> None:
        imgs.append({"id": image_id, "file_name": name, "width": width, "height": height, "license": 1})

    def ann(image_id: int, cat: int, seg, bbox, area: float, crowd: int = 0) -> int:
        anns.append(
            {
                "id": 1000 + len(anns),
                "image_id": image_id,
                "category_id": cat,
                "segmentation": seg,
                "bbox": bbox,
                "area": area,
                "iscrowd": crowd,
            }
        )
        return anns[-1]["id"]

    def rect_poly(x0, y0, x1, y1):
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]

    def box_mask(x0, y0, x1, y1, width=w, height=h):
        m = np.zeros((height, width), bool)
        m[y0:y1, x0:x1] = True
        return m

    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[6:22, 4:20] = (200, 120, 40)
    _save(Image.fromarray(rgb), images / "rgb.png", "PNG")
    image(101, "rgb.png")
    a_main = ann(101, 18, rect_poly(4, 6, 20, 22), [4, 6, 16, 16], 256.0)
    ann(101, 18, rect_poly(24, 2, 30, 8), [24, 2, 6, 6], 36.0)
    ann(101, 18, uncompressed_rle(box_mask(20, 10, 40, 30)), [20, 10, 20, 20], 400.0, crowd=1)
    ann(101, 1, rect_poly(32, 2, 38, 9), [32, 2, 6, 7], 42.0)

    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(box_mask(10, 5, 30, 25).astype(np.uint8)))
    _save(Image.new("L", (w, h), 100), images / "gray.jpg", "JPEG")
    image(102, "gray.jpg")
    a_rle = ann(102, 18, {"size": [h, w], "counts": rle["counts"].decode("ascii")}, [10, 5, 20, 20], 400.0)

    _save(Image.new("CMYK", (w, h), (0, 255, 255, 0)), images / "cmyk.jpg", "JPEG")  # pure red in CMYK
    image(103, "cmyk.jpg")
    a_clip = ann(103, 18, rect_poly(30, 20, 40, 30), [30, 20, 15, 15], 100.0)  # bbox runs 5 px past the edge

    pal = Image.new("P", (w, h), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    pal.paste(1, (8, 8, 24, 24))
    _save(pal, images / "palette.png", "PNG")
    image(104, "palette.png")
    a_pal = ann(104, 13, rect_poly(8, 8, 24, 24), [8, 8, 16, 16], 256.0)

    _save(Image.new("RGBA", (w, h), (50, 60, 70, 128)), images / "rgba.png", "PNG")
    image(105, "rgba.png")
    a_rgba = ann(105, 18, rect_poly(5, 5, 15, 15), [5, 5, 10, 10], 100.0)

    _save(Image.fromarray(np.full((h, w), 32896, np.uint16)), images / "gray16.png", "PNG")
    image(106, "gray16.png")
    a_16 = ann(106, 18, rect_poly(5, 5, 15, 15), [5, 5, 10, 10], 100.0)

    _save(Image.new("RGB", (w, h), (90, 90, 90)), images / "crowd_only.png", "PNG")
    image(107, "crowd_only.png")
    ann(107, 18, uncompressed_rle(box_mask(0, 0, 20, 20)), [0, 0, 20, 20], 400.0, crowd=1)

    _save(Image.new("RGB", (w, h), (90, 90, 90)), images / "tiny.png", "PNG")
    image(108, "tiny.png")
    a_tiny = ann(108, 18, rect_poly(3, 3, 5, 5), [3, 3, 2, 2], 4.0)

    image(109, "missing.jpg")
    a_missing = ann(109, 18, rect_poly(5, 5, 15, 15), [5, 5, 10, 10], 100.0)
    write_truncated_jpeg(images / "truncated.jpg", (w, h))
    image(110, "truncated.jpg")
    a_trunc = ann(110, 18, rect_poly(5, 5, 15, 15), [5, 5, 10, 10], 100.0)
    write_not_image(images / "not_image.jpg")
    image(111, "not_image.jpg")
    a_bad = ann(111, 18, rect_poly(5, 5, 15, 15), [5, 5, 10, 10], 100.0)

    dataset = {
        "info": {"description": "bamkit test fixture"},
        "licenses": [{"id": 1, "name": "test", "url": ""}],
        # listed out of id order on purpose: readers must sort
        "images": sorted(imgs, key=lambda i: -i["id"]),
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 13, "name": "stop sign", "supercategory": "outdoor"},
            {"id": 18, "name": "dog", "supercategory": "animal"},
        ],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(dataset), encoding="utf-8")
    return {
        "annotations": path,
        "images": images,
        "expected": {
            "dog": [
                (101, a_main),
                (102, a_rle),
                (103, a_clip),
                (105, a_rgba),
                (106, a_16),
                (108, a_tiny),
                (109, a_missing),
                (110, a_trunc),
                (111, a_bad),
            ],
            "stop sign": [(104, a_pal)],
            "rle_box": (10, 5, 30, 25),  # x0, y0, x1, y1 of the RLE dog in image 102
            "clip_box": (20, 30, 30, 40),  # y0, y1, x0, x1 after clipping in image 103
            "bad": {"missing": 1, "truncated": 1, "unreadable": 1},
        },
    }


# -- folder-per-class scene trees -------------------------------------------------------------------------
def write_scene_folders(
    root: str | Path, classes: dict[str, int], *, letters: bool = False, size: int = 16
) -> dict[str, list[Path]]:
    """A Places365-style tree ``root/[<letter>/]<name>/<i>.jpg``; nested names like ``track/outdoor`` allowed.

    Each class gets its own flat colour (so tests can check that files were not mixed up).

    Returns:
        name -> written paths (sorted).
    """
    root = Path(root)
    written: dict[str, list[Path]] = {}
    for k, (name, n) in enumerate(sorted(classes.items())):
        folder = root / (f"{name[0]}/{name}" if letters else name)
        folder.mkdir(parents=True, exist_ok=True)
        colour = (20 * k % 256, 255 - 15 * k % 256, 100)
        for i in range(n):
            p = folder / f"{i:08d}.jpg"
            Image.new("RGB", (size, size), colour).save(p, "JPEG", quality=95)
            written.setdefault(name, []).append(p)
    return {name: sorted(paths) for name, paths in written.items()}
