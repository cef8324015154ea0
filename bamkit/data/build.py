"""Build a BAM dataset file from a recipe: plan, decode once, compose in parallel, stream to HDF5, resume.

Stages (each restartable; everything lives in ``<out>.parts/`` until the final rename):

1. open the sources and check that every class has enough candidates (before any pixel work);
2. decode each chosen source once into ``sources.h5`` (:mod:`bamkit.data.prepare`);
3. compose the sets chunk by chunk in worker processes (one pool serves stages 2 and 3); a worker composes a
   whole chunk of rows at once (placements of every row drawn together, one resize per composite shared by
   every set of the group) and returns each dataset chunk already encoded exactly as HDF5 stores it (deflated
   where the dataset has the gzip filter; identical chunks, e.g. the masks of ``obj_scene``, ``scene_only``
   and ``obj_gray``, encoded once). With several workers the chunks are left in a slot of a shared-memory
   buffer (no pickling through a pipe) and only their offsets come back; workers are forked from a fork
   server that imported the pixel code once (:mod:`bamkit.data.pool`);
4. the parent writes each chunk, in task order, straight into ``current/data.h5`` with ``write_direct_chunk``
   (written once, no recompression) and appends a line to ``current/journal.txt`` with the byte offset and
   size of each stored chunk; at the end it marks the sets complete and renames the file to ``<out>``.

Resume: HDF5 is not crash-safe, so an interrupted ``data.h5`` is never reopened as HDF5. Its chunk bytes are
(``write_direct_chunk`` writes through to the operating system before the journal line is appended, so a line
only names bytes that survive ``kill -9``): the folder is renamed ``previous/``, a fresh ``data.h5`` is created
by the same steps, the journalled chunks are copied into it from the recorded offsets in the same order, and
composing goes on from the first task without a journal line. A kill during that replay leaves ``previous/``
in place and the next run replays from it again. ``manifest.json`` holds the build key; a different recipe
starts afresh. Because every pixel is a function of ``(seed, o, s, i)`` and the file is always written by the
same sequence of HDF5 calls in task order, the result is byte-identical whatever ``workers`` is and whether
or not the build was interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import h5py

from bamkit.data import h5 as H
from bamkit.data import h5_write as h5w
from bamkit.data import prepare as P
from bamkit.data.filters import make_filter
from bamkit.data.journal import ChunkWriter, attempt_dir, open_output, parts_dir, replay
from bamkit.data.plan import (
    DERIVED_SETS,
    Group,
    Plan,
    choose_sources,
    derived_scene,
    make_plan,
)
from bamkit.data.pool import OrderedPool, ordered_pool
from bamkit.data.recipe import Recipe
from bamkit.data.workers import chunk_rows, compose_chunk, compose_to_slot, init_worker, slot_size
from bamkit.errors import DataError
from bamkit.locks import output_lock
from bamkit.progress import bar
from bamkit.provenance import file_hash, json_hash, versions

log = logging.getLogger(__name__)

# Version of the parts-folder formats (source cache, journal) and the random streams: a parts folder of
# another builder version is never resumed.
_BUILDER = 2


# -- parent side ------------------------------------------------------------------------------------------
def _set_attrs(plan: Plan, group: Group, name: str) -> dict[str, Any]:
    r = plan.recipe
    attrs: dict[str, Any] = {
        "n_per_pair": r.images_per_pair,
        "n_val_per_pair": r.n_val,
        "val_fraction": r.val_fraction,
    }
    if name.startswith("commonality/"):
        classes = plan.commonality[name]
        attrs.update(
            n_per_class=r.n_commonality,  # scene images per class: the pairs' n, then extra training scenes
            k=float(name.split("/k")[1]),
            common_feature=r.common_feature,
            feature_scenes=[r.scenes[c] for c in classes],
            feature_scene_labels=list(classes),
        )
    elif name in DERIVED_SETS:
        attrs.update(object=r.common_feature, scene=derived_scene(r, name))
    elif name == "obj_gray":
        attrs.update(gray_value=r.gray_value)
    return attrs


def build_key(
    recipe: Recipe,
    annotations_sha256: str,
    scene_files: dict[str, list[str]],
    vers: dict[str, str] | None = None,
) -> str:
    """Hash of everything that decides the file's bytes: recipe, sources, schema and bamkit versions."""
    return json_hash(
        {
            "recipe": recipe.to_dict(),
            "schema": H.SCHEMA_VERSION,
            "builder": _BUILDER,
            "versions": vers if vers is not None else versions(),
            "annotations": annotations_sha256,
            "scenes": scene_files,
        }
    )


def _compose_shared(
    plan: Plan,
    pool: OrderedPool,
    tasks: list[tuple[int, int]],
    todo: range,
    writer: ChunkWriter,
    scene_width: int,
    pbar: Any,
    n_rows: Any,
) -> None:
    """Compose with worker processes that leave each task's chunks in a shared-memory slot.

    The pool keeps at most ``2 * workers`` tasks submitted while the parent writes one more, so
    ``2 * workers + 1`` slots used round-robin never overlap; the chunk bytes cross no pipe.
    """
    cap = slot_size(plan, scene_width)
    n_slots = 2 * pool.workers + 1
    shm = shared_memory.SharedMemory(create=True, size=cap * n_slots)
    try:
        jobs = ((*tasks[k], shm.name, (k % n_slots) * cap, cap) for k in todo)
        for idx, locs in zip(todo, pool.map(compose_to_slot, jobs)):
            base = (idx % n_slots) * cap
            if locs and isinstance(locs[0], bytes):
                writer.write(idx, locs)
            else:
                views = [shm.buf[base + at : base + at + n] for at, n in locs]
                writer.write(idx, views)
                for v in views:
                    v.release()
            pbar.update(n_rows(idx))
    finally:
        shm.close()
        shm.unlink()


def _write_all(
    plan: Plan,
    pool: OrderedPool,
    tasks: list[tuple[int, int]],
    current: Path,
    previous: Path | None,
    attrs: dict[str, Any],
    scene_width: int,
    label: str,
) -> None:
    """Create ``current/data.h5``, replay ``previous``'s journalled chunks, compose the rest, mark complete."""
    f = open_output(plan, current / "data.h5", attrs, scene_width)
    writer = ChunkWriter(plan, f, current / "journal.txt", tasks)
    try:
        if previous is not None:
            log.info("resuming: copying the chunks journalled in %s", previous)
            replay(previous, writer)
            shutil.rmtree(previous)
        todo = range(writer.done, len(tasks))

        def n_rows(idx: int) -> int:
            g, j = tasks[idx]
            rows = chunk_rows(plan, plan.groups[g])
            return min(rows, plan.groups[g].n_rows - j * rows)

        with bar(total=sum(n_rows(k) for k in todo), desc=f"compose {label}", unit="img") as pbar:
            if pool.workers == 1:
                for idx, chunks in zip(todo, pool.map(compose_chunk, (tasks[k] for k in todo))):
                    writer.write(idx, chunks)
                    pbar.update(n_rows(idx))
            elif todo:
                _compose_shared(plan, pool, tasks, todo, writer, scene_width, pbar, n_rows)
        for group in plan.groups:
            for name in group.sets:
                h5w.mark_complete(f[name], _set_attrs(plan, group, name))
    finally:
        writer.close()
        f.close()


def build_dataset(
    recipe: Recipe, out: str | Path | None = None, workers: int = 1, force: bool = False
) -> Path:
    """Build every set the recipe names into one HDF5 file (the layout of docs/design.md#the-dataset-file).

    Args:
        recipe: a validated recipe (:func:`bamkit.data.recipe.load_recipe`).
        out: the file to write; default ``<recipe.name>.h5`` in the current directory.
        workers: processes that decode and compose (the bytes written do not depend on it).
        force: rebuild even when ``out`` exists with the same build key.

    Returns:
        the path of the finished file.

    Raises:
        DataError: missing or malformed sources, or too few usable source images (before any work starts).
    """
    from bamkit.sources.coco import CocoObjects
    from bamkit.sources.miniplaces import MiniPlaces

    out = Path(out) if out is not None else Path(f"{recipe.name}.h5")
    if workers < 1:
        raise DataError(f"workers={workers}; expected an integer >= 1")
    src = recipe.sources
    coco = CocoObjects(src.coco_annotations, src.coco_images, min_area=recipe.min_object_area)
    places = MiniPlaces(src.miniplaces, split=src.miniplaces_split)
    scene_filter = make_filter(recipe.scene_filter, Path(src.miniplaces), recipe.objects)
    choice = choose_sources(recipe, coco, places, scene_filter)
    plan = make_plan(recipe)
    ann_sha = file_hash(src.coco_annotations)
    vers = versions()
    key = build_key(recipe, ann_sha, {k: [str(p) for p in v] for k, v in choice.scenes.items()}, vers)
    with output_lock(out, "dataset file"):
        if out.exists() and not force and _existing_key(out) == key:
            log.info("%s is up to date (same recipe and sources)", out)
            return out
        check_disk(plan, out)
        return _build(recipe, out, workers, coco, choice, plan, scene_filter, key, ann_sha, vers)


def estimated_bytes(plan: Plan) -> int:
    """Bytes the finished file will take, about (images raw or ~72 % deflated; masks ~1/8 of a byte per pixel;
    the per-row fields), plus the decoded-source cache of the parts folder."""
    r = plan.recipe
    pixels = r.size * r.size
    per_row = pixels * 3 * (0.72 if r.compress_images else 1.0) + pixels / 8 + 64
    rows = sum(g.n_rows * len(g.sets) for g in plan.groups)
    cache = (len(r.objects) * r.images_per_pair + len(r.scenes) * r.n_scene_images) * pixels * 4
    return int(rows * per_row + cache)


def check_disk(plan: Plan, out: Path) -> None:
    """Refuse, before any work, a build that cannot fit on the output's disk (the estimate with 10 % margin)."""
    need = estimated_bytes(plan) * 1.1
    folder = out.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > free:
        r = plan.recipe
        raise DataError(
            f"building {str(out)!r} needs about {need / 1e9:.2f} GB ({r.images_per_pair} images per pair at "
            f"{r.size} px) but {free / 1e9:.2f} GB are free in {folder}; free space, lower images_per_pair or "
            "size, or choose another --out"
        )


def _build(recipe, out, workers, coco, choice, plan, scene_filter, key, ann_sha, vers) -> Path:
    """The build proper, under the output's lock (see :func:`build_dataset`)."""
    src = recipe.sources
    parts = parts_dir(out, key)
    cache = parts / "sources.h5"
    if not cache.exists():
        P.write_subset(coco, choice, P.subset_path(cache))
    tasks = [
        (g, j)
        for g, group in enumerate(plan.groups)
        for j in range(-(-group.n_rows // chunk_rows(plan, group)))
    ]
    # One pool for decoding and composing: workers start once (a worker's start-up is the fixed cost).
    init = (plan, str(cache), P.init_args(recipe, cache))
    with ordered_pool(workers, init_worker, init) as pool:
        if cache.exists():
            summary = P.cache_summary(cache)
        else:
            summary = P.prepare_sources(recipe, coco, choice, cache, pool=pool)
        with h5py.File(cache, "r") as f:
            scene_width = max(1, f["scene_files"].dtype.itemsize)
        provenance = {
            "versions": vers,
            "sources": {
                "coco_annotations": str(src.coco_annotations),
                "coco_annotations_sha256": ann_sha,
                "coco_images": str(src.coco_images),
                "miniplaces": str(src.miniplaces),
                "miniplaces_split": src.miniplaces_split,
            },
            "candidates": {
                "objects": {k: len(v) for k, v in choice.objects.items()},
                "scenes": {k: len(v) for k, v in choice.scenes.items()},
            },
            "skips": summary,
            "scene_filter": scene_filter.describe(),
        }
        attrs = {"recipe": recipe.to_yaml(), "seed": recipe.seed, "build_key": key, "provenance": provenance}
        current, previous = attempt_dir(parts)
        _write_all(plan, pool, tasks, current, previous, attrs, scene_width, out.name)
    os.replace(current / "data.h5", out)
    shutil.rmtree(parts, ignore_errors=True)
    for kind, counts in summary.items():
        if counts and kind.endswith("_skips"):  # the named files stay in the provenance
            log.warning(
                "%s: %s", kind.replace("_", " "), ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            )
    return out


def _existing_key(path: Path) -> str | None:
    """The build key of an existing output; an output that is not a bamkit-built dataset is never overwritten
    silently (``--force`` does)."""
    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get("build_key")
    except Exception as e:  # h5py raises OSError, KeyError ... for damaged files
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise DataError(
            f"{str(path)!r} exists but cannot be read as HDF5 ({type(e).__name__}: {first}); delete it or pass "
            "--force to overwrite it"
        ) from None
    if v is None:
        raise DataError(
            f"{str(path)!r} exists but is not a dataset bamkit built (no build key); pass --force to overwrite "
            "it or choose another --out"
        )
    return v.decode() if isinstance(v, bytes) else v
