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

import json
import logging
import os
import shutil
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.data import h5 as H
from bamkit.data import prepare as P
from bamkit.data.compose import draw_placements, harden, paste_resized, row_hash
from bamkit.data.filters import make_filter
from bamkit.data.plan import (
    COMPOSITE,
    GRAY,
    SCENE_PLAIN,
    Group,
    Plan,
    choose_sources,
    make_plan,
)
from bamkit.data.pool import OrderedPool, ordered_pool
from bamkit.data.recipe import Recipe
from bamkit.errors import DataError
from bamkit.progress import bar
from bamkit.provenance import file_hash, json_hash, versions

log = logging.getLogger(__name__)

_W: dict[str, Any] = {}
# Provenance fields the builder writes after the API.md ones, in this order (chunk order of a task).
_EXTRA = ("object_index", "paired_object", "source_object", "source_scene")
FIELD_ORDER = (*H.FIELDS, *_EXTRA)
# Version of the parts-folder formats (source cache, journal) and the random streams: a parts folder of
# another builder version is never resumed.
_BUILDER = 2
# Modules the fork server imports once for every worker (decoding and composing).
_PRELOAD = ("bamkit.data.build", "bamkit.sources.coco", "bamkit.sources.decode", "PIL.JpegImagePlugin")


# -- worker side ------------------------------------------------------------------------------------------
def _init_worker(plan: Plan, cache: str, prepare_args: tuple[str, str, int, int]) -> None:
    """State of a worker of both stages: decoding (:mod:`bamkit.data.prepare`) and composing."""
    P.init_worker(*prepare_args)
    _W.clear()
    _W.update(plan=plan, cache_path=cache, cache=None, pid=-1)


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


def _gather(d: h5py.Dataset, first: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Rows ``d[first[r], i[r]]`` stacked, with one slice read per distinct ``first`` (chunks are runs of i)."""
    out = np.empty((len(i), *d.shape[2:]), dtype=d.dtype)
    for a in np.unique(first):
        rows = np.flatnonzero(first == a)
        sel = i[rows]
        lo, hi = int(sel.min()), int(sel.max()) + 1
        out[rows] = d[int(a), lo:hi][sel - lo]
    return out


def chunk_rows(plan: Plan, group: Group) -> int:
    """Rows per HDF5 chunk of the group's sets (the recipe's ``chunk_rows``, capped at the set size)."""
    return min(plan.recipe.chunk_rows, group.n_rows)


def compose_chunk(task: tuple[int, int]) -> dict[str, dict[str, bytes | np.ndarray]]:
    """Compose chunk ``j`` of group ``g`` of every set in the group; return its encoded dataset chunks.

    Returns:
        set name -> field (in :data:`FIELD_ORDER`) -> the chunk as HDF5 stores it: ``bytes`` (deflated), or
        for a dataset without filter a C-contiguous array of exactly ``chunk_rows`` rows (the last chunk of a
        set zero-padded); equal deflated chunks are the same ``bytes`` object.
    """
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
    placed = np.logical_or.reduce([k != SCENE_PLAIN for k in kinds.values()])
    scenes = _gather(c["scenes"], s, i)
    # One placement and one resize per composite, shared by every set of the group (BAM §3.1).
    canvas = np.zeros((m, size, size, 4), np.uint8)
    boxes = np.full((m, 4), -1, np.int32)
    ids = np.full((m, 2), -1, np.int64)
    rows_p = np.flatnonzero(placed)
    if rows_p.size:
        op, ip = o[rows_p], i[rows_p]
        objects = _gather(c["obj_rgba"], op, ip)
        y0, x0, h, w = draw_placements(
            row_hash(r.seed, op, s[rows_p], ip), c["obj_src_hw"][op, ip], size, r.size_range
        )
        boxes[rows_p] = np.stack([y0, x0, y0 + h, x0 + w], axis=1)
        ids[rows_p] = c["obj_ids"][op, ip]
        obj_hw = c["obj_hw"][op, ip].tolist()
        for k, (row, a, b, hh, ww) in enumerate(
            zip(rows_p.tolist(), y0.tolist(), x0.tolist(), h.tolist(), w.tolist())
        ):
            oh, ow = obj_hw[k]
            paste_resized(canvas[row], np.ascontiguousarray(objects[k, :oh, :ow]), a, b, hh, ww)
    masks = harden(canvas, boxes)
    obj_rgb = canvas[..., :3]
    box_list = boxes.tolist()
    shared = {
        "split": plan.split(i),
        "pair_index": plan.pair_index(o, s, i),
        "object_index": i.astype(np.int32),
    }
    scene_files = c["scene_files"][s, i]
    no_file = np.zeros(m, dtype=scene_files.dtype)
    # Identical arrays (the masks of obj_scene, scene_only and obj_gray) are deflated and pickled once.
    memo: dict[tuple[str, int], tuple[np.ndarray, bytes]] = {}

    def encode(field: str, arr: np.ndarray) -> bytes | np.ndarray:
        if not H.compressed(field, r.compress_images):
            if arr.shape[0] < rows:
                return np.frombuffer(H.encode_chunk(arr, rows, compress=False), arr.dtype)
            return np.ascontiguousarray(arr)
        key = (field, id(arr))
        if key not in memo:
            memo[key] = (arr, H.encode_chunk(arr, rows, compress=True))
        return memo[key][1]

    out: dict[str, dict[str, bytes | np.ndarray]] = {}
    for name, kind in kinds.items():
        comp, gray = kind == COMPOSITE, kind == GRAY
        has = kind != SCENE_PLAIN  # SCENE_PAIRED rows carry their composite's mask (API.md scene_only)
        if gray.all():
            images = np.full_like(scenes, r.gray_value)
        elif gray.any():
            images = np.where(gray[:, None, None, None], np.uint8(r.gray_value), scenes)
        else:
            images = scenes
        with_obj = np.flatnonzero(comp | gray).tolist()
        if with_obj:
            images = images.copy() if images is scenes else images
            for row in with_obj:
                y0_, x0_, y1_, x1_ = box_list[row]
                np.copyto(
                    images[row, y0_:y1_, x0_:x1_],
                    obj_rgb[row, y0_:y1_, x0_:x1_],
                    where=masks[row, y0_:y1_, x0_:x1_, None],
                )
        arrays = {
            "images": images,
            "masks": masks if has.all() else masks & has[:, None, None],  # same object: encoded once
            "boxes": np.where(has[:, None], boxes, np.int32(-1)),
            "object_label": np.where(comp | gray, o, -1).astype(np.int16),
            "scene_label": np.where(gray, -1, s).astype(np.int16),
            **shared,
            "paired_object": np.where(has, o, -1).astype(np.int16),
            "source_object": np.where(has[:, None], ids, np.int64(-1)),
            "source_scene": np.where(gray, no_file, scene_files),
        }
        out[name] = {f: encode(f, arrays[f]) for f in FIELD_ORDER}
    return out


def _shm(name: str) -> shared_memory.SharedMemory:
    """This worker's attachment to the parent's chunk buffer (attached once per process)."""
    if _W.get("shm_name") != name:
        _W["shm"] = shared_memory.SharedMemory(name=name)
        _W["shm_name"] = name
    return _W["shm"]


def compose_to_slot(task: tuple[int, int, str, int, int]) -> list[tuple[int, int]] | list[bytes]:
    """Compose a chunk task into a slot of the parent's shared buffer instead of sending the bytes back.

    Args:
        task: ``(g, j, buffer name, slot offset, slot size)``; the parent gives each task in flight its own
            slot, so the workers never write the same bytes (:func:`_compose_shared`).

    Returns:
        ``(offset, size)`` within the slot of each chunk, in the task's write order (a chunk equal to an
        earlier one points at the same bytes); or the chunks' ``bytes`` when they do not fit the slot.
    """
    g, j, name, base, cap = task
    plan: Plan = _W["plan"]
    chunks = compose_chunk((g, j))
    data = [chunks[n][f] for n in plan.groups[g].sets for f in FIELD_ORDER]
    if sum(memoryview(d).nbytes for d in {id(d): d for d in data}.values()) > cap:
        return [bytes(memoryview(d).cast("B")) for d in data]
    buf = _shm(name).buf
    locs: list[tuple[int, int]] = []
    placed: dict[int, tuple[int, int]] = {}
    at = 0
    for d in data:
        if id(d) not in placed:
            view = memoryview(d).cast("B")
            buf[base + at : base + at + view.nbytes] = view
            placed[id(d)] = (at, view.nbytes)
            at += view.nbytes
        locs.append(placed[id(d)])
    return locs


def _slot_size(plan: Plan, scene_width: int) -> int:
    """Bytes that hold every chunk of any task (raw size, plus deflate's worst-case growth)."""
    size, best = plan.recipe.size, 0
    widths = {
        **{k: v.itemsize for k, v in H.FIELDS.items()},
        **{k: H.EXTRA_FIELDS[k].itemsize for k in _EXTRA},
    }
    widths["source_scene"] = scene_width
    for group in plan.groups:
        rows = chunk_rows(plan, group)
        raw = [rows * int(np.prod(H.row_shape(f, size), dtype=np.int64)) * widths[f] for f in FIELD_ORDER]
        best = max(best, len(group.sets) * sum(n + n // 8 + 64 for n in raw))
    return best


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


def _open_output(plan: Plan, path: Path, attrs: dict[str, Any], scene_width: int) -> h5py.File:
    """Create the output file and every set's empty datasets (the same calls on every run)."""
    r = plan.recipe
    f = H.create_file(path, list(r.objects), list(r.scenes), r.size, attrs, compress_images=r.compress_images)
    extra = {**{k: H.EXTRA_FIELDS[k] for k in _EXTRA}, "source_scene": np.dtype(f"S{scene_width}")}
    for group in plan.groups:
        for name in group.sets:
            H.create_set(f, name, group.n_rows, r.size, extra=extra, chunk_rows=chunk_rows(plan, group))
    return f


class _Writer:
    """Writes task chunks into the output file in task order and journals where their bytes are."""

    def __init__(self, plan: Plan, f: h5py.File, journal: Path, tasks: list[tuple[int, int]]) -> None:
        self.plan, self.f, self.tasks = plan, f, tasks
        self.handles = {
            (name, field): f[name][field]
            for group in plan.groups
            for name in group.sets
            for field in FIELD_ORDER
        }
        self.journal = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.done = 0

    def fields(self, idx: int) -> list[tuple[str, str]]:
        """(set, field) of each chunk of task ``idx``, in write order."""
        group = self.plan.groups[self.tasks[idx][0]]
        return [(name, field) for name in group.sets for field in FIELD_ORDER]

    def write(self, idx: int, chunks: dict[str, dict[str, Any]] | list[Any]) -> None:
        """Store task ``idx``'s chunks (buffers in :meth:`fields` order, or compose_chunk's dict); journal."""
        if idx != self.done:
            raise DataError(f"internal: chunk task {idx} written out of order (expected {self.done})")
        j = self.tasks[idx][1]
        data = chunks if isinstance(chunks, list) else [chunks[n][k] for n, k in self.fields(idx)]
        locs = [H.write_chunk(self.handles[key], j, d) for key, d in zip(self.fields(idx), data)]
        # The line is appended only after every chunk of the task reached the operating system.
        os.write(self.journal, (f"{idx} " + " ".join(f"{a}:{b}" for a, b in locs) + "\n").encode())
        self.done += 1

    def close(self) -> None:
        os.close(self.journal)


def _journal(path: Path, writer: _Writer) -> list[list[tuple[int, int]]]:
    """The well-formed journal lines of ``path``: per task in order, its chunks' (offset, size)."""
    out: list[list[tuple[int, int]]] = []
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # a last line without newline was cut by the kill
    except OSError:
        return out
    for line in lines:
        parts = line.decode(errors="replace").split(" ")
        idx = len(out)
        if idx >= len(writer.tasks) or parts[0] != str(idx) or len(parts) - 1 != len(writer.fields(idx)):
            break
        try:
            out.append([(int(a), int(b)) for a, b in (x.split(":") for x in parts[1:])])
        except ValueError:
            break
    return out


def _replay(previous: Path, writer: _Writer) -> None:
    """Copy the journalled chunks of an interrupted run (``previous/``) into the new file, in task order."""
    entries = _journal(previous / "journal.txt", writer)
    if not entries:
        return
    with open(previous / "data.h5", "rb") as old:
        for idx, locs in enumerate(bar(entries, desc="resume", unit="chunk")):
            data = []
            for offset, size in locs:
                old.seek(offset)
                data.append(old.read(size))
            if any(len(d) != size for d, (_, size) in zip(data, locs)):
                break
            writer.write(idx, data)


def _attempt_dir(parts: Path) -> tuple[Path, Path | None]:
    """The folder of this run's output and journal, and the interrupted run's folder to replay (if any)."""
    current, previous = parts / "current", parts / "previous"
    if previous.exists():  # a replay was interrupted: its partial copy is discarded, the original kept
        shutil.rmtree(current, ignore_errors=True)
    elif current.exists():
        os.replace(current, previous)
    current.mkdir()
    return current, previous if previous.exists() else None


def _compose_shared(
    plan: Plan,
    pool: OrderedPool,
    tasks: list[tuple[int, int]],
    todo: range,
    writer: _Writer,
    scene_width: int,
    pbar: Any,
    n_rows: Any,
) -> None:
    """Compose with worker processes that leave each task's chunks in a shared-memory slot.

    The pool keeps at most ``2 * workers`` tasks submitted while the parent writes one more, so
    ``2 * workers + 1`` slots used round-robin never overlap; the chunk bytes cross no pipe.
    """
    cap = _slot_size(plan, scene_width)
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
    f = _open_output(plan, current / "data.h5", attrs, scene_width)
    writer = _Writer(plan, f, current / "journal.txt", tasks)
    try:
        if previous is not None:
            log.info("resuming: copying the chunks journalled in %s", previous)
            _replay(previous, writer)
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
                H.mark_complete(f[name], _set_attrs(plan, group, name))
    finally:
        writer.close()
        f.close()


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
    vers = versions()
    key = build_key(recipe, ann_sha, {k: [str(p) for p in v] for k, v in choice.scenes.items()}, vers)
    if out.exists() and not force and _existing_key(out) == key:
        log.info("%s is up to date (same recipe and sources)", out)
        return out

    parts = _parts_dir(out, key)
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
    with ordered_pool(workers, _init_worker, init, preload=_PRELOAD) as pool:
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
        current, previous = _attempt_dir(parts)
        _write_all(plan, pool, tasks, current, previous, attrs, scene_width, out.name)
    os.replace(current / "data.h5", out)
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
