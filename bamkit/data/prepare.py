"""Decode each source once into a bounded on-disk cache the composing workers read (docs/dataset.md#object-extraction).

BAM pastes object instance i into scene image i of *every* scene class, and scene image i receives every object
class, so each source is used ``n_scenes`` (or ``n_objects``) times. Decoding them once per build and keeping the
result on disk instead of in memory keeps the build's memory flat in the dataset size:

* objects: the COCO image is decoded and the instance cut out (:class:`bamkit.sources.coco.CocoObjects`), then
  shrunk so its larger side is at most the largest pasted side (:func:`bamkit.data.compose.shrink_cutout`) and
  stored premultiplied (PIL's ``RGBa``, :func:`bamkit.data.compose.premultiply`) in a fixed (M, M, 4) slot, with its shape and its source shape (the paste's
  aspect ratio comes from the source shape, as in BAM);
* scenes: decoded and brought to S x S.

The i-th item of a class is the i-th candidate that decodes (sorted COCO image ids / sorted file names); bad
files are skipped, counted, and the next candidate takes their place. The workers each read a small COCO
instances file holding only the candidates' entries, so the 450 MB train2017 file is parsed once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.data.compose import fit_scene, premultiply, shrink_cutout
from bamkit.data.plan import SourceChoice
from bamkit.data.pool import OrderedPool, ordered_pool
from bamkit.data.recipe import Recipe
from bamkit.errors import DataError
from bamkit.progress import bar
from bamkit.sources.skips import MISSING, SkipCounter

_BATCH = 16
SKIPS_NAMED = 1000  # skipped files named per reason in the provenance
_STATE: dict[str, Any] = {}


def init_worker(subset_json: str, images_dir: str, size: int, max_side: int) -> None:
    """Worker state of the decoding tasks (the COCO subset is parsed on the first object task only)."""
    _STATE.clear()
    _STATE.update(subset=subset_json, images=images_dir, coco=None, size=size, max_side=max_side)


def _coco():
    if _STATE["coco"] is None:
        from bamkit.sources.coco import CocoObjects

        _STATE["coco"] = CocoObjects(_STATE["subset"], _STATE["images"])
    return _STATE["coco"]


def _decode_objects(task: tuple[int, list[tuple[int, int]]]) -> tuple[int, list[Any], SkipCounter]:
    o, pairs = task
    coco = _coco()
    coco.skips = SkipCounter()
    out: list[Any] = []
    for image_id, ann_id in pairs:
        cut = coco.load(image_id, ann_id)
        if cut is None:
            out.append(None)
            continue
        rgba, hw = shrink_cutout(cut.rgb, cut.mask, _STATE["max_side"])
        out.append(
            (
                premultiply(rgba),
                hw,
                np.array(cut.mask.shape, dtype=np.int32),
                (image_id, ann_id),
                cut.file_name,
            )
        )
    return o, out, coco.skips


def _decode_scenes(task: tuple[int, list[str]]) -> tuple[int, list[Any], SkipCounter]:
    from bamkit.sources.decode import read_rgb

    s, paths = task
    skips = SkipCounter()
    out: list[Any] = []
    for p in paths:
        rgb, reason = read_rgb(p)
        if rgb is None:
            skips.add(reason, p)
            out.append(None)
        else:
            out.append(fit_scene(rgb, _STATE["size"]))
    return s, out, skips


def write_subset(coco, choice: SourceChoice, path: Path) -> None:
    """A COCO instances file with only the candidate images and annotations (for the workers)."""
    ds = coco.coco.dataset
    ann_ids = {a for pairs in choice.objects.values() for _, a in pairs}
    img_ids = {i for pairs in choice.objects.values() for i, _ in pairs}
    subset = {
        "images": [coco.coco.imgs[i] for i in sorted(img_ids)],
        "annotations": [coco.coco.anns[a] for a in sorted(ann_ids)],
        "categories": ds["categories"],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(subset), encoding="utf-8")
    os.replace(tmp, path)


def _select(
    kind: str,
    candidates: list[list[Any]],
    names: list[str],
    n: int,
    fn,
    pool: OrderedPool,
    skips: SkipCounter,
    folder: str = "",
) -> Iterator[tuple[int, int, Any, Any]]:
    """Decode candidates in order until each class has ``n`` good items; yield (class, slot, candidate, item).

    ``folder``: the recipe key and path the files come from, named when none of a class's files exists."""
    filled = [0] * len(candidates)
    pos = [0] * len(candidates)
    with bar(total=n * len(candidates), desc=f"decode {kind}", unit="img") as pbar:
        while True:
            tasks = []
            for c, cands in enumerate(candidates):
                need = n - filled[c]
                if need <= 0:
                    continue
                if pos[c] >= len(cands):
                    missing = skips.counts.get(MISSING, 0)
                    if filled[c] == 0 and missing >= len(cands):  # a wrong folder, not too few images
                        example = (skips.examples.get(MISSING) or ["?"])[0]
                        raise DataError(
                            f"none of the {len(cands)} {kind.rstrip('s')} files of {names[c]!r} exists (e.g. {example}); "
                            f"the folder is wrong: check {folder or 'the sources folder'}"
                        )
                    raise DataError(
                        f"too few usable {kind} for {names[c]!r}: {filled[c]} of {len(cands)} candidates decoded, "
                        f"{n} needed ({skips.summary() or 'no skips'}); lower images_per_pair"
                    )
                batch = list(range(pos[c], min(pos[c] + need, len(cands))))
                pos[c] += len(batch)
                for b in range(0, len(batch), _BATCH):
                    tasks.append((c, batch[b : b + _BATCH]))
            if not tasks:
                return
            payload = [(c, [candidates[c][j] for j in idx]) for c, idx in tasks]
            for (c, idx), (_, items, sk) in zip(tasks, pool.map(fn, payload)):
                skips.merge(sk)
                for j, item in zip(idx, items):
                    if item is not None:
                        yield c, filled[c], candidates[c][j], item
                        filled[c] += 1
                        pbar.update(1)


def subset_path(cache: Path) -> Path:
    """Where the COCO subset of the candidates lives, next to the cache."""
    return cache.with_name("coco_subset.json")


def init_args(recipe: Recipe, cache: Path) -> tuple[str, str, int, int]:
    """Arguments of :func:`init_worker` for a build of ``recipe`` with its cache at ``cache``."""
    return (str(subset_path(cache)), str(recipe.sources.coco_images), recipe.size, recipe.size_range[1] - 1)


def prepare_sources(
    recipe: Recipe,
    coco,
    choice: SourceChoice,
    cache: Path,
    workers: int = 1,
    pool: OrderedPool | None = None,
) -> dict[str, Any]:
    """Decode the chosen sources once into the cache file ``cache`` (written atomically).

    Args:
        recipe: the recipe (class lists, count per pair, image side).
        coco: the :class:`~bamkit.sources.coco.CocoObjects` the candidates came from.
        choice: candidates per class from :func:`bamkit.data.plan.choose_sources`.
        cache: the HDF5 cache to write (datasets ``obj_rgba`` (nO, n, M, M, 4), ``obj_hw`` / ``obj_src_hw``
            (nO, n, 2), ``obj_ids`` (nO, n, 2), ``obj_files`` (nO, n), ``scenes`` (nS, n', S, S, 3),
            ``scene_files`` (nS, n') with n' = :attr:`Recipe.n_scene_images`).
        workers: decoding processes (when ``pool`` is not given).
        pool: an open pool whose workers ran :func:`init_worker` with :func:`init_args` (the builder shares
            one pool between decoding and composing); :func:`write_subset` must have written the subset.

    Returns:
        a summary: skip counts of objects and scenes, and the skipped files by reason.
    """
    n, n_scene, size = recipe.images_per_pair, recipe.n_scene_images, recipe.size
    max_side = recipe.size_range[1] - 1
    nO, nS = len(recipe.objects), len(recipe.scenes)
    if pool is None:
        write_subset(coco, choice, subset_path(cache))
        with ordered_pool(workers, init_worker, init_args(recipe, cache)) as own:
            return prepare_sources(recipe, coco, choice, cache, pool=own)
    root = Path(recipe.sources.miniplaces)
    tmp = cache.with_name(cache.name + ".tmp")
    # every skipped file is named in the provenance (bounded: at most SKIPS_NAMED per reason)
    obj_skips, scene_skips = SkipCounter(keep_examples=SKIPS_NAMED), SkipCounter(keep_examples=SKIPS_NAMED)
    obj_files: list[list[str]] = [[""] * n for _ in range(nO)]
    scene_files: list[list[str]] = [[""] * n_scene for _ in range(nS)]
    with h5py.File(tmp, "w") as f:
        # Contiguous (not chunked): a worker reads a run of items of one class with a single read.
        rgba = f.create_dataset("obj_rgba", (nO, n, max_side, max_side, 4), np.uint8)
        # The small tables are filled in memory and written once (h5py's per-item write costs ~0.1 ms).
        hw, src_hw = np.zeros((nO, n, 2), np.int32), np.zeros((nO, n, 2), np.int32)
        ids = np.zeros((nO, n, 2), np.int64)
        obj_c = [list(choice.objects[name]) for name in recipe.objects]
        for o, i, _, (arr, shape, src_shape, pair, fname) in _select(
            "objects",
            obj_c,
            list(recipe.objects),
            n,
            _decode_objects,
            pool,
            obj_skips,
            f"sources.coco_images ({recipe.sources.coco_images}; --coco-images)",
        ):
            slot = np.zeros((max_side, max_side, 4), np.uint8)
            slot[: shape[0], : shape[1]] = arr
            rgba.write_direct(slot, dest_sel=np.s_[o, i])
            hw[o, i], src_hw[o, i], ids[o, i] = shape, src_shape, pair
            obj_files[o][i] = fname
        for name, table in (("obj_hw", hw), ("obj_src_hw", src_hw), ("obj_ids", ids)):
            f.create_dataset(name, data=table)
        scenes = f.create_dataset("scenes", (nS, n_scene, size, size, 3), np.uint8)
        scene_c = [[str(p) for p in choice.scenes[name]] for name in recipe.scenes]
        for s, i, path, arr in _select(
            "scenes",
            scene_c,
            list(recipe.scenes),
            n_scene,
            _decode_scenes,
            pool,
            scene_skips,
            f"sources.miniplaces ({recipe.sources.miniplaces}, images/ below it; --miniplaces)",
        ):
            scenes.write_direct(np.ascontiguousarray(arr), dest_sel=np.s_[s, i])
            try:
                scene_files[s][i] = str(Path(path).relative_to(root))
            except ValueError:
                scene_files[s][i] = str(path)
        f.create_dataset("obj_files", data=np.array(obj_files, dtype=bytes))
        f.create_dataset("scene_files", data=np.array(scene_files, dtype=bytes))
        summary = {
            "object_skips": dict(obj_skips.counts),
            "scene_skips": dict(scene_skips.counts),
            "object_skipped_files": {k: list(v) for k, v in obj_skips.examples.items()},
            "scene_skipped_files": {k: list(v) for k, v in scene_skips.examples.items()},
        }
        f.attrs["summary"] = json.dumps(summary, sort_keys=True)
    os.replace(tmp, cache)
    return summary


def cache_summary(cache: Path) -> dict[str, Any]:
    """The summary :func:`prepare_sources` returned, read back from a finished cache (resume)."""
    with h5py.File(cache, "r") as f:
        return json.loads(f.attrs["summary"])
