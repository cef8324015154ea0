"""A faithful re-implementation of BAM's original dataset algorithm, for timing only (docs/dataset.md#object-extraction).

It does what ``scripts/construct_bam_dataset.py`` of google-research-datasets/bam does, step by step, with the
same libraries and the same one-image-at-a-time structure, so ``bench/build.py`` can compare bamkit's builder
against it on the same sources:

1. ``extract_coco_objects``: per object class, visit the COCO images of the category (pycocotools order), read
   each with ``skimage.io.imread``, take the largest-area annotation, multiply the image by its mask, crop to
   the integer bbox, convert to RGBA and make every pure-black pixel transparent with a per-pixel Python loop,
   save a PNG; keep the first n images that work (any exception skips the image — grayscale JPEGs fail the
   3-channel multiply and are skipped, as in BAM); save the last 10 % of the cropped masks.
2. ``copy_scenes``: copy each scene class folder out of the MiniPlaces tree.
3. ``paste_objects_to_scenes``: for every (object, scene, i) open the scene JPEG and the object PNG, draw the
   size in ``[int(S/√3), int(S/√2))`` for the side with the larger ratio and the location with numpy's global
   RNG, resize bilinearly, save the scene as ``scene_only`` JPEG, paste with the PNG's alpha, save the
   composite twice (``scene`` and ``obj`` folders) as JPEG, and write ``loc.txt`` files.
4. ``divide_train_val``: copy every file into ``train/<class>`` or ``val/`` (validation = the last 10 % of the
   indices; BAM's regex ``9[0-9]{2}.jpg`` for n = 1000) with a 100-thread pool, write ``val.txt`` and
   ``val_loc.txt``.
5. ``save_subset``: copy the ``dog-bedroom`` composites and the ``dog-bamboo_forest`` scene-only images.

Deviations, all irrelevant to timing: category names are the exact COCO names (BAM's ``stop_sign`` selects
arbitrary objects, docs/dataset.md#object-extraction), the numpy RNG is seeded, ``tf.io.gfile`` is plain file I/O, and the TCAV folders
are not written.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from multiprocessing import dummy as threadpool
from pathlib import Path

import numpy as np
import skimage.io
from PIL import Image

VAL_RATIO = 0.9


def extract_coco_objects(coco, images_dir: Path, obj_names: list[str], n: int, out_dir: Path) -> None:
    for obj_name in obj_names:
        dst = out_dir / obj_name
        dst.mkdir(parents=True, exist_ok=True)
        cat_ids = coco.getCatIds(catNms=[obj_name])
        imgs = coco.loadImgs(coco.getImgIds(catIds=cat_ids))
        masks, count = [], 0
        for img in imgs:
            try:
                arr = skimage.io.imread(str(images_dir / img["file_name"]))
                anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"], catIds=cat_ids, iscrowd=None))
                best, best_area = None, 0
                for ann in anns:
                    if ann["area"] > best_area:
                        best, best_area = ann, ann["area"]
                bx, by, bw, bh = best["bbox"]
                mask2d = coco.annToMask(best)
                mask = np.stack((mask2d,) * 3, axis=-1)
                crop = (arr * mask)[int(by) : int(by + bh), int(bx) : int(bx + bw), :]
                rgba = Image.fromarray(crop).convert("RGBA")
                pixels = []
                for px in rgba.getdata():
                    pixels.append((0, 0, 0, 0) if px[0] == 0 and px[1] == 0 and px[2] == 0 else px)
                rgba.putdata(pixels)
                rgba.save(dst / (Path(img["file_name"]).stem + ".png"), format="png")
                masks.append((img["file_name"], mask2d[int(by) : int(by + bh), int(bx) : int(bx + bw)]))
                count += 1
                if count == n:
                    break
            except Exception:  # BAM's bare except: any failure skips the image
                continue
        masks.sort(key=lambda m: m[0])
        start = int(n * VAL_RATIO)
        np.save(
            dst / "val_mask.npy", np.array([m[1] for m in masks[start:]], dtype=object), allow_pickle=True
        )


def copy_scenes(miniplaces_images_train: Path, scene_names: list[str], out_dir: Path) -> None:
    for name in scene_names:
        shutil.copytree(miniplaces_images_train / name[0] / name, out_dir / name.split("/")[0])


def paste_objects_to_scenes(obj_dir: Path, sce_dir: Path, out: Path, n: int) -> list[str]:
    obj_raw, sce_raw, sce_only = out / "obj_all", out / "scene_all", out / "scene_only_all"
    objs, sces = sorted(os.listdir(obj_dir)), sorted(os.listdir(sce_dir))
    for o in objs:
        (obj_raw / o).mkdir(parents=True, exist_ok=True)
    for s in sces:
        (sce_raw / s).mkdir(parents=True, exist_ok=True)
        (sce_only / s).mkdir(parents=True, exist_ok=True)
    locs = []
    for obj in objs:
        obj_fnames = sorted(f for f in os.listdir(obj_dir / obj) if f.endswith(".png"))[:n]
        for sce in sces:
            sce_fnames = sorted(os.listdir(sce_dir / sce))
            for i in range(n):
                sce_img = Image.open(sce_dir / sce / sce_fnames[i]).convert("RGBA")
                sw, sh = sce_img.size
                obj_img = Image.open(obj_dir / obj / obj_fnames[i]).convert("RGBA")
                ow, oh = obj_img.size
                lo, hi = np.sqrt(3), np.sqrt(2)
                if float(ow) / sw > float(oh) / sh:
                    nw = np.random.randint(int(sw / lo), int(sw / hi))
                    nh = int(float(nw) / ow * oh)
                else:
                    nh = np.random.randint(int(sh / lo), int(sh / hi))
                    nw = int(float(nh) / oh * ow)
                row = np.random.randint(0, sh - nh)
                col = np.random.randint(0, sw - nw)
                obj_img = obj_img.resize((nw, nh), Image.BILINEAR)
                fname = f"{obj}-{sce}-{i:04d}.jpg"
                sce_img.convert("RGB").save(sce_only / sce / fname, format="jpeg")
                sce_img.paste(obj_img, (col, row), obj_img)
                sce_img = sce_img.convert("RGB")
                sce_img.save(sce_raw / sce / fname, format="jpeg")
                sce_img.save(obj_raw / obj / fname, format="jpeg")
                locs.append(fname + " " + ",".join(map(str, [row, col, row + nh, col + nw])))
    for d in (sce_only, sce_raw, obj_raw):
        (d / "loc.txt").write_text("\n".join(sorted(locs)))
    return locs


def divide_train_val(out: Path, n: int) -> None:
    val_start = int(n * VAL_RATIO)
    pattern = re.compile(r"-(\d{4})\.jpg$")
    pool = threadpool.Pool(100)
    for dir_name in ("obj", "scene", "scene_only"):
        src, dst = out / f"{dir_name}_all", out / dir_name
        (dst / "val").mkdir(parents=True, exist_ok=True)
        table = dict(line.rsplit(" ", 1) for line in (src / "loc.txt").read_text().splitlines())
        classes = sorted(p for p in os.listdir(src) if p != "loc.txt")
        val_lines, loc_lines = [], []
        for label, cls in enumerate(classes):
            files = os.listdir(src / cls)
            val = sorted(f for f in files if int(pattern.search(f).group(1)) >= val_start)
            train = [f for f in files if f not in set(val)]
            (dst / "train" / cls).mkdir(parents=True, exist_ok=True)
            pool.map(lambda f, c=cls, a=src, b=dst: shutil.copy(a / c / f, b / "train" / c / f), train)
            pool.map(lambda f, c=cls, a=src, b=dst: shutil.copy(a / c / f, b / "val" / f), val)
            val_lines += [f"{f} {label}\n" for f in val]
            loc_lines += [f"{f} {table[f]}\n" for f in val]
        (dst / "val.txt").write_text("".join(sorted(val_lines)))
        (dst / "val_loc.txt").write_text("".join(sorted(loc_lines)))
        shutil.rmtree(src)
    pool.close()


def save_subset(out: Path, src_name: str, dst_name: str, prefix: str, label: int) -> None:
    dst = out / dst_name / "val"
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(f for f in os.listdir(out / src_name / "val") if f.startswith(prefix))
    for f in names:
        shutil.copy(out / src_name / "val" / f, dst / f)
    (out / dst_name / "val.txt").write_text("\n".join(f"{f} {label}" for f in names))


def run_original(
    annotations: Path,
    coco_images: Path,
    miniplaces: Path,
    objects: list[str],
    scenes: list[str],
    n: int,
    out: Path,
    seed: int = 0,
) -> dict[str, float]:
    """Run every step into ``out``; returns seconds per step."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    np.random.seed(seed)
    times: dict[str, float] = {}
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
    times["load_annotations"] = time.perf_counter() - t
    t = time.perf_counter()
    extract_coco_objects(coco, coco_images, objects, n, out / "segments")
    times["extract_objects"] = time.perf_counter() - t
    t = time.perf_counter()
    copy_scenes(miniplaces / "images" / "train", scenes, out / "scene_subset")
    times["copy_scenes"] = time.perf_counter() - t
    t = time.perf_counter()
    paste_objects_to_scenes(out / "segments", out / "scene_subset", out, n)
    times["paste"] = time.perf_counter() - t
    t = time.perf_counter()
    divide_train_val(out, n)
    save_subset(out, "scene", "dog_bedroom", "dog-bedroom", 1)
    save_subset(out, "scene_only", "bamboo_forest", "dog-bamboo_forest", 0)
    times["split_and_subsets"] = time.perf_counter() - t
    return times
