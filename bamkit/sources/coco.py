"""Object cut-outs from a COCO instances file (BAM §3.1; docs/dataset.md#object-extraction).

For each BAM object class, BAM takes from every COCO image that contains the category the **largest** instance
of it, crops the image and the instance mask to the instance's box, and keeps the first images that load.
bamkit does the same with three deliberate changes (docs/dataset.md#object-extraction, [D]): image ids are visited in sorted order
(BAM iterated a Python ``set``), crowd annotations are never chosen, and category names are exact COCO names —
BAM's ``stop_sign`` does not exist in COCO, and pycocotools silently answers an unknown name with *every*
image, so :meth:`CocoObjects.resolve` refuses it and suggests ``"stop sign"``.

pycocotools is the only decoder of segmentations (polygons, uncompressed RLE of crowds, compressed RLE of some
third-party exports); nothing here re-implements RLE or polygon rasterisation.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bamkit.errors import DataError
from bamkit.sources.decode import read_rgb
from bamkit.sources.skips import CROWD, EMPTY, SIZE_MISMATCH, SMALL, SkipCounter


@dataclass(frozen=True)
class ObjectCutout:
    """One object instance cropped to its box.

    Attributes:
        category: the COCO category name (e.g. ``"stop sign"``).
        rgb: ``(h, w, 3)`` uint8 image pixels inside the instance box.
        mask: ``(h, w)`` bool instance mask over the same crop.
        image_id, ann_id: COCO ids of the image and the annotation (recorded for provenance).
        file_name: the image's ``file_name`` in the instances file.
    """

    category: str
    rgb: np.ndarray
    mask: np.ndarray
    image_id: int
    ann_id: int
    file_name: str

    @property
    def area(self) -> int:
        """Number of object pixels in the crop."""
        return int(self.mask.sum())


def _load_coco(path: Path):
    """Load an instances file with pycocotools, its progress prints silenced, errors turned into DataError."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise DataError(
            f"COCO annotations: no file {path}; expected an instances JSON such as "
            "annotations/instances_train2017.json (pass --coco-annotations, or `bamkit sources synth` for a demo)"
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            with open(path, encoding="utf-8") as f:
                dataset = json.load(f)
            if not isinstance(dataset, dict):
                raise DataError(
                    f"COCO annotations {path}: top level is {type(dataset).__name__}, expected an object"
                )
            missing = [k for k in ("images", "annotations", "categories") if k not in dataset]
            if missing:
                raise DataError(
                    f"COCO annotations {path}: missing key(s) {missing}; expected a COCO *instances* file with "
                    "'images', 'annotations' and 'categories' (captions/keypoints files do not carry masks)"
                )
            coco.dataset = dataset
            coco.createIndex()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(
            f"COCO annotations {path}: not valid JSON ({e}); re-download or regenerate the file"
        ) from e
    except (KeyError, TypeError) as e:
        raise DataError(f"COCO annotations {path}: malformed entry ({type(e).__name__}: {e})") from e
    return coco


def _crop_box(bbox: list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """COCO ``[x, y, w, h]`` (float pixels) -> integer ``(y0, x0, y1, x1)``, end exclusive, clipped to the image.

    floor/ceil keep every pixel the box touches, so the mask inside it is never cut.
    """
    x, y, w, h = (float(v) for v in bbox)
    y0 = min(max(math.floor(y), 0), height)
    x0 = min(max(math.floor(x), 0), width)
    y1 = min(max(math.ceil(y + h), 0), height)
    x1 = min(max(math.ceil(x + w), 0), width)
    return y0, x0, y1, x1


class CocoObjects:
    """Reader of BAM object instances from a COCO instances file and its image folder.

    Args:
        annotations: the instances JSON (e.g. ``annotations/instances_train2017.json``); loaded once.
        images: the folder holding the images' ``file_name`` s (e.g. ``train2017/``).
        min_area: instances whose annotated ``area`` is below this many pixels are excluded (counted as
            ``"small"``); 0 keeps all, as BAM did.

    Raises:
        DataError: the JSON is missing, not JSON, or not an instances file; ``images`` is not a folder.

    Attributes:
        skips: what was skipped and why (missing/unreadable/truncated files, small or crowd-only instances).
    """

    def __init__(self, annotations: str | Path, images: str | Path, *, min_area: float = 0.0) -> None:
        self.annotations = Path(annotations)
        self.images = Path(images)
        if min_area < 0 or not math.isfinite(min_area):
            raise DataError(f"COCO objects: min_area={min_area}; expected a finite number >= 0 (pixels)")
        self.min_area = float(min_area)
        self.coco = _load_coco(self.annotations)
        if not self.images.is_dir():
            raise DataError(
                f"COCO images: no folder {self.images}; expected the folder holding the instances file's "
                "file_name entries (e.g. train2017/; pass --coco-images)"
            )
        self.skips = SkipCounter()
        self._candidates: dict[int, list[tuple[int, int]]] = {}

    # -- categories --------------------------------------------------------------------------------------
    def category_names(self) -> list[str]:
        """COCO category names in category-id order."""
        return [c["name"] for c in sorted(self.coco.cats.values(), key=lambda c: c["id"])]

    def resolve(self, name: str) -> int:
        """The COCO category id of the exact name ``name``.

        Raises:
            DataError: ``name`` is not a category of this file; the message suggests the closest names
                (``"stop_sign"`` -> ``"stop sign"``) and lists all of them.
        """
        by_name = {c["name"]: cid for cid, c in self.coco.cats.items()}
        if name in by_name:
            return int(by_name[name])
        names = self.category_names()
        respelled = name.replace("_", " ").replace("-", " ").strip().lower()
        close = [n for n in names if n.lower() == respelled]
        close += [n for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6) if n not in close]
        hint = f"did you mean {' or '.join(repr(n) for n in close)}? " if close else ""
        raise DataError(
            f"COCO category {name!r} is not in {self.annotations.name}; {hint}"
            f"use the exact COCO name (available: {', '.join(names)})"
        )

    # -- instance choice (no pixels) ---------------------------------------------------------------------
    def candidates(self, name: str) -> list[tuple[int, int]]:
        """``(image_id, ann_id)`` of the largest non-crowd instance of ``name`` in each image, ids sorted.

        BAM's largest-instance rule (docs/dataset.md#object-extraction), on the annotations' ``area`` (ties: the lower annotation
        id). Crowd annotations are never chosen; an image whose only instances of the category are crowds
        counts as ``"crowd"``, one whose largest instance is below ``min_area`` as ``"small"``. No pixels
        are decoded, so a builder can count what is available before starting. The answer is cached, and the
        skips are counted the first time only.
        """
        cat_id = self.resolve(name)
        if cat_id in self._candidates:
            return list(self._candidates[cat_id])
        chosen: list[tuple[int, int]] = []
        for image_id in sorted(self.coco.getImgIds(catIds=[cat_id])):
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], catIds=[cat_id], iscrowd=None))
            singles = [a for a in anns if not a.get("iscrowd", 0)]
            if not singles:
                self.skips.add(CROWD, f"image {image_id}")
                continue
            best = max(singles, key=lambda a: (float(a.get("area", 0.0)), -int(a["id"])))
            if float(best.get("area", 0.0)) < self.min_area:
                self.skips.add(SMALL, f"image {image_id} ann {best['id']} area {best.get('area', 0.0):.0f}")
                continue
            chosen.append((int(image_id), int(best["id"])))
        self._candidates[cat_id] = chosen
        return list(chosen)

    # -- pixels --------------------------------------------------------------------------------------------
    def load(self, image_id: int, ann_id: int) -> ObjectCutout | None:
        """Decode the image and the instance mask and crop both to the instance box.

        The image comes out RGB whatever its mode (grayscale, CMYK, palette, RGBA, 16-bit). The mask is
        pycocotools' ``annToMask`` (polygons, uncompressed or compressed RLE). The box is the annotation's
        ``bbox`` widened to whole pixels and clipped to the image.

        Returns:
            The cut-out, or ``None`` when the image file is missing, unreadable or truncated, its size
            disagrees with the annotation file, or the mask is empty in the box — each counted in
            :attr:`skips` by reason.

        Raises:
            DataError: ``image_id``/``ann_id`` are not in the annotation file, or the annotation does not
                belong to that image (a caller bug or a mixed-up file, not a bad image).
        """
        if image_id not in self.coco.imgs or ann_id not in self.coco.anns:
            raise DataError(
                f"COCO objects: image {image_id} / annotation {ann_id} not in {self.annotations.name}; "
                "pass pairs returned by candidates()"
            )
        info = self.coco.imgs[image_id]
        ann = self.coco.anns[ann_id]
        if ann["image_id"] != image_id:
            raise DataError(
                f"COCO objects: annotation {ann_id} belongs to image {ann['image_id']}, not {image_id}"
            )
        file_name = str(info["file_name"])
        rgb, reason = read_rgb(self.images / file_name)
        if rgb is None:
            self.skips.add(reason, file_name)
            return None
        height, width = int(info["height"]), int(info["width"])
        if rgb.shape[:2] != (height, width):
            self.skips.add(
                SIZE_MISMATCH, f"{file_name}: file {rgb.shape[1]}x{rgb.shape[0]}, json {width}x{height}"
            )
            return None
        mask = self.coco.annToMask(ann).astype(bool)
        bbox = ann.get("bbox")
        if bbox is None:
            from pycocotools import mask as mask_utils

            bbox = mask_utils.toBbox(self.coco.annToRLE(ann)).tolist()
        y0, x0, y1, x1 = _crop_box(bbox, height, width)
        crop_mask = mask[y0:y1, x0:x1]
        if not crop_mask.any():
            self.skips.add(EMPTY, f"{file_name} ann {ann_id}")
            return None
        category = self.coco.cats[ann["category_id"]]["name"]
        return ObjectCutout(
            category=category,
            rgb=np.ascontiguousarray(rgb[y0:y1, x0:x1]),
            mask=np.ascontiguousarray(crop_mask),
            image_id=int(image_id),
            ann_id=int(ann_id),
            file_name=file_name,
        )

    def iter_objects(self, name: str, limit: int | None = None) -> Iterator[ObjectCutout]:
        """Cut-outs of ``name`` in sorted image-id order, skipping (and counting) bad files.

        Args:
            name: exact COCO category name.
            limit: stop after this many cut-outs (BAM keeps the first 1,000 that load); ``None`` = all.
        """
        if limit is not None and limit < 0:
            raise DataError(f"COCO objects: limit={limit}; expected None or a count >= 0")
        n = 0
        for image_id, ann_id in self.candidates(name):
            if limit is not None and n >= limit:
                return
            cut = self.load(image_id, ann_id)
            if cut is not None:
                n += 1
                yield cut
