"""The builder's worker side (BAM §3.1–3.2): compose a whole chunk of rows of every set of a group at once and
return each dataset chunk already encoded as HDF5 stores it; with several workers, leave the chunks in a slot of
the parent's shared-memory buffer (no pickling through a pipe). :mod:`bamkit.data.build` is the parent side."""

from __future__ import annotations

import os
from multiprocessing import shared_memory
from typing import Any

import h5py
import numpy as np

from bamkit.data import h5 as H
from bamkit.data import h5_write as h5w
from bamkit.data import prepare as P
from bamkit.data.compose import draw_placements, harden, paste_resized, row_hash
from bamkit.data.plan import COMPOSITE, GRAY, SCENE_PLAIN, Group, Plan

_W: dict[str, Any] = {}
# Provenance fields the builder writes after the layout's ones, in this order (chunk order of a task).
EXTRA = ("object_index", "paired_object", "source_object", "source_scene")
FIELD_ORDER = (*H.FIELDS, *EXTRA)


def init_worker(plan: Plan, cache: str, prepare_args: tuple[str, str, int, int]) -> None:
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
        op, ip = o[rows_p], plan.object_instance(i[rows_p])
        objects = _gather(c["obj_rgba"], op, ip)
        y0, x0, h, w = draw_placements(  # hashed by the scene image i: an extra scene gets its own placement
            row_hash(r.seed, op, s[rows_p], i[rows_p]), c["obj_src_hw"][op, ip], size, r.size_range
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
        if not h5w.compressed(field, r.compress_images):
            if arr.shape[0] < rows:
                return np.frombuffer(h5w.encode_chunk(arr, rows, compress=False), arr.dtype)
            return np.ascontiguousarray(arr)
        key = (field, id(arr))
        if key not in memo:
            memo[key] = (arr, h5w.encode_chunk(arr, rows, compress=True))
        return memo[key][1]

    out: dict[str, dict[str, bytes | np.ndarray]] = {}
    for name, kind in kinds.items():
        comp, gray = kind == COMPOSITE, kind == GRAY
        has = kind != SCENE_PLAIN  # SCENE_PAIRED rows carry their composite's mask (the layout's scene_only)
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
            slot, so the workers never write the same bytes (``build._compose_shared``).

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


def slot_size(plan: Plan, scene_width: int) -> int:
    """Bytes that hold every chunk of any task (raw size, plus deflate's worst-case growth)."""
    size, best = plan.recipe.size, 0
    widths = {
        **{k: v.itemsize for k, v in H.FIELDS.items()},
        **{k: H.EXTRA_FIELDS[k].itemsize for k in EXTRA},
    }
    widths["source_scene"] = scene_width
    for group in plan.groups:
        rows = chunk_rows(plan, group)
        raw = [rows * int(np.prod(H.row_shape(f, size), dtype=np.int64)) * widths[f] for f in FIELD_ORDER]
        best = max(best, len(group.sets) * sum(n + n // 8 + 64 for n in raw))
    return best
