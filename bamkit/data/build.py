"""Build a BAM dataset file from a recipe: plan, decode once, compose in parallel, stream to HDF5, resume.

Stages (each restartable; everything lives in ``<out>.parts/`` until the final rename):

1. open the sources and check that every class has enough candidates (before any pixel work);
2. decode each chosen source once into ``sources.h5`` (:mod:`bamkit.data.prepare`);
3. compose the sets chunk by chunk in worker processes; a worker returns each chunk of each dataset already
   deflated (exactly as HDF5's gzip filter stores it), and the parent writes it to ``chunk_NNNNNN.pkl``
   atomically, in task order — the completed chunk files are the progress record;
4. assemble ``<out>.tmp`` from the chunk files with ``write_direct_chunk`` (a byte copy, no recompression),
   then rename it to ``<out>`` and delete the parts folder.

An interrupted build (even ``kill -9``) re-run with the same recipe keeps the decoded sources and the completed
chunks (``manifest.json`` holds the build key; a different recipe starts afresh). Because every pixel is a
function of ``(seed, o, s, i)`` and the file is assembled by one deterministic pass, the result is
byte-identical whatever ``workers`` is and whether or not the build was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.atomic import commit, tmp_path
from bamkit.data import h5 as H
from bamkit.data.compose import draw_placement, gray, paste, resize_object, rng_for
from bamkit.data.filters import make_filter
from bamkit.data.plan import (
    COMPOSITE,
    GRAY,
    SCENE_PAIRED,
    SCENE_PLAIN,
    Group,
    Plan,
    choose_sources,
    make_plan,
)
from bamkit.data.pool import ordered_pool
from bamkit.data.prepare import cache_summary, prepare_sources
from bamkit.data.recipe import Recipe
from bamkit.errors import DataError
from bamkit.progress import bar
from bamkit.provenance import file_hash, json_hash, versions

log = logging.getLogger(__name__)

_W: dict[str, Any] = {}


# -- worker side ------------------------------------------------------------------------------------------
def _init_compose(plan: Plan, cache: str, scene_width: int) -> None:
    _W.clear()
    _W.update(plan=plan, cache_path=cache, cache=None, pid=-1, scene_width=scene_width)


def _cache() -> dict[str, Any]:
    """The decoded-source cache of this process: small tables in memory, pixels read per chunk."""
    if _W["cache"] is None or _W["pid"] != os.getpid():
        f = h5py.File(_W["cache_path"], "r")
        _W["cache"] = {
            "file": f,
            "obj_rgba": f["obj_rgba"],
            "scenes": f["scenes"],
            **{k: f[k][()] for k in ("obj_hw", "obj_src_hw", "obj_ids", "scene_files")},
        }
        _W["pid"] = os.getpid()
    return _W["cache"]


def _read_block(d: h5py.Dataset, first: np.ndarray, i: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Rows ``d[first[r], i[r]]`` with one slice read per distinct ``first`` (rows of a chunk are runs of i)."""
    out = {}
    for a in np.unique(first):
        sel = i[first == a]
        lo, hi = int(sel.min()), int(sel.max()) + 1
        block = d[int(a), lo:hi]
        for ii in np.unique(sel):
            out[(int(a), int(ii))] = block[int(ii) - lo]
    return out


def chunk_rows(plan: Plan, group: Group) -> int:
    """Rows per HDF5 chunk of the group's sets (the recipe's ``chunk_rows``, capped at the set size)."""
    return min(plan.recipe.chunk_rows, group.n_rows)


def compose_chunk(task: tuple[int, int]) -> dict[str, dict[str, bytes]]:
    """Compose chunk ``j`` of group ``g`` of every set in the group; return its deflated dataset chunks."""
    g, j = task
    plan: Plan = _W["plan"]
    r = plan.recipe
    group = plan.groups[g]
    rows = chunk_rows(plan, group)
    start, stop = j * rows, min((j + 1) * rows, group.n_rows)
    o, s, i = plan.rows(group, start, stop)
    kinds = {name: plan.kinds(group, name, s) for name in group.sets}
    c = _cache()
    size, m = r.size, stop - start
    plain = np.logical_and.reduce([k == SCENE_PLAIN for k in kinds.values()])
    scenes = _read_block(c["scenes"], s, i)
    objects = _read_block(c["obj_rgba"], o[~plain], i[~plain]) if (~plain).any() else {}
    background = gray(size, r.gray_value)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in group.sets:
        out[name] = {
            "images": np.zeros((m, size, size, 3), np.uint8),
            "masks": np.zeros((m, size, size), bool),
            "boxes": np.full((m, 4), -1, np.int32),
            "object_label": np.full(m, -1, np.int16),
            "scene_label": np.full(m, -1, np.int16),
            "split": plan.split(i),
            "pair_index": plan.pair_index(o, s, i),
            "object_index": i.astype(np.int32),
            "paired_object": np.full(m, -1, np.int16),
            "source_object": np.full((m, 2), -1, np.int64),
            "source_scene": np.zeros(m, dtype=f"S{_W['scene_width']}"),
        }
    for row in range(m):
        oo, ss, ii = int(o[row]), int(s[row]), int(i[row])
        scene = scenes[(ss, ii)]
        scene_file = c["scene_files"][ss, ii]
        row_kinds = {name: int(k[row]) for name, k in kinds.items()}
        placed = None
        if any(k != SCENE_PLAIN for k in row_kinds.values()):
            hh, ww = (int(v) for v in c["obj_hw"][oo, ii])
            where = draw_placement(
                tuple(c["obj_src_hw"][oo, ii]), size, r.size_range, rng_for(r.seed, oo, ss, ii)
            )
            obj_rgb, obj_mask = resize_object(
                np.ascontiguousarray(objects[(oo, ii)][:hh, :ww]), where.h, where.w
            )
            composite, mask = paste(scene, obj_rgb, obj_mask, where)
            placed = (where, obj_rgb, obj_mask, composite, mask, tuple(c["obj_ids"][oo, ii]))
        for name, kind in row_kinds.items():
            a = out[name]
            a["source_scene"][row] = scene_file
            if kind == SCENE_PLAIN:
                a["images"][row], a["scene_label"][row] = scene, ss
                continue
            where, obj_rgb, obj_mask, composite, mask, ids = placed
            a["masks"][row], a["boxes"][row] = mask, where.box
            a["paired_object"][row], a["source_object"][row] = oo, ids
            if kind == COMPOSITE:
                a["images"][row], a["object_label"][row], a["scene_label"][row] = composite, oo, ss
            elif kind == SCENE_PAIRED:
                a["images"][row], a["scene_label"][row] = scene, ss
            elif kind == GRAY:
                # Same pixels as the composite inside the mask, gray outside (identical to pasting on gray).
                np.copyto(a["images"][row], background)
                np.copyto(a["images"][row], composite, where=mask[..., None])
                a["object_label"][row], a["source_scene"][row] = oo, b""
    return {
        name: {k: H.encode_chunk(v, rows, H.compressed(k, r.compress_images)) for k, v in arrays.items()}
        for name, arrays in out.items()
    }


# -- parent side ------------------------------------------------------------------------------------------
def _extra_dtypes(scene_width: int) -> dict[str, np.dtype]:
    return {
        **{k: v for k, v in H.EXTRA_FIELDS.items() if k != "source_scene"},
        "source_scene": np.dtype(f"S{scene_width}"),
    }


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
            k=float(name.split("/k")[1]),
            common_feature=r.common_feature,
            feature_scenes=[r.scenes[c] for c in classes],
            feature_scene_labels=list(classes),
        )
    elif name in ("dog_bedroom", "bamboo_forest"):
        scene = r.contrast_scene if name == "dog_bedroom" else r.always_scene
        attrs.update(object=r.common_feature, scene=scene)
    elif name == "obj_gray":
        attrs.update(gray_value=r.gray_value)
    return attrs


def build_key(recipe: Recipe, annotations_sha256: str, scene_files: dict[str, list[str]]) -> str:
    """Hash of everything that decides the file's bytes: recipe, sources, schema and bamkit versions."""
    return json_hash(
        {
            "recipe": recipe.to_dict(),
            "schema": H.SCHEMA_VERSION,
            "versions": versions(),
            "annotations": annotations_sha256,
            "scenes": scene_files,
        }
    )


def _parts_dir(out: Path, key: str) -> Path:
    parts = out.with_name(out.name + ".parts")
    manifest = parts / "manifest.json"
    if parts.exists():
        try:
            same = json.loads(manifest.read_text())["key"] == key
        except (OSError, ValueError, KeyError):
            same = False
        if same:
            log.info("resuming the interrupted build in %s", parts)
            return parts
        log.info("%s belongs to another recipe or source; starting afresh", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    manifest.write_text(json.dumps({"key": key}))
    return parts


def _part(parts: Path, idx: int) -> Path:
    return parts / f"chunk_{idx:06d}.pkl"


def _assemble(
    plan: Plan, parts: Path, tasks: list[tuple[int, int]], out: Path, attrs: dict[str, Any], scene_width: int
) -> None:
    r = plan.recipe
    tmp = tmp_path(out)
    f = H.create_file(tmp, list(r.objects), list(r.scenes), r.size, attrs, compress_images=r.compress_images)
    try:
        for group in plan.groups:
            for name in group.sets:
                H.create_set(
                    f,
                    name,
                    group.n_rows,
                    r.size,
                    extra=_extra_dtypes(scene_width),
                    chunk_rows=chunk_rows(plan, group),
                )
        handles: dict[tuple[str, str], h5py.Dataset] = {}
        for idx, (_, j) in enumerate(bar(tasks, desc="assemble", unit="chunk")):
            with open(_part(parts, idx), "rb") as fh:
                chunks = pickle.load(fh)
            for name, fields in chunks.items():
                for field, data in fields.items():
                    if (name, field) not in handles:
                        handles[(name, field)] = f[name][field]
                    H.write_chunk(handles[(name, field)], j, data)
        for group in plan.groups:
            for name in group.sets:
                H.mark_complete(f[name], _set_attrs(plan, group, name))
    finally:
        f.close()
    commit(tmp, out)


def build_dataset(
    recipe: Recipe, out: str | Path | None = None, workers: int = 1, force: bool = False
) -> Path:
    """Build every set the recipe names into one HDF5 file (API.md layout).

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
    key = build_key(recipe, ann_sha, {k: [str(p) for p in v] for k, v in choice.scenes.items()})
    if out.exists() and not force and _existing_key(out) == key:
        log.info("%s is up to date (same recipe and sources)", out)
        return out

    parts = _parts_dir(out, key)
    cache = parts / "sources.h5"
    summary = (
        cache_summary(cache) if cache.exists() else prepare_sources(recipe, coco, choice, cache, workers)
    )
    with h5py.File(cache, "r") as f:
        scene_width = max(1, f["scene_files"].dtype.itemsize)

    tasks = [
        (g, j)
        for g, group in enumerate(plan.groups)
        for j in range(-(-group.n_rows // chunk_rows(plan, group)))
    ]
    todo = [idx for idx in range(len(tasks)) if not _part(parts, idx).exists()]
    total = sum(
        min(chunk_rows(plan, plan.groups[g]), plan.groups[g].n_rows - j * chunk_rows(plan, plan.groups[g]))
        for g, j in (tasks[idx] for idx in todo)
    )
    with (
        ordered_pool(workers, _init_compose, (plan, str(cache), scene_width)) as pool,
        bar(total=total, desc=f"compose {out.name}", unit="img") as pbar,
    ):
        for idx, chunks in zip(todo, pool.map(compose_chunk, (tasks[idx] for idx in todo))):
            path = _part(parts, idx)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(chunks, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
            g, j = tasks[idx]
            rows = chunk_rows(plan, plan.groups[g])
            pbar.update(min(rows, plan.groups[g].n_rows - j * rows))

    provenance = {
        "versions": versions(),
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
    _assemble(plan, parts, tasks, out, attrs, scene_width)
    shutil.rmtree(parts, ignore_errors=True)
    for kind, counts in summary.items():
        if counts:
            log.warning(
                "%s: %s", kind.replace("_", " "), ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            )
    return out


def _existing_key(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get("build_key")
            return v.decode() if isinstance(v, bytes) else v
    except OSError:
        return None
