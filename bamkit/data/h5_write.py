"""Writing BAM dataset files: create a file with the schema's attributes, create sets with the shared chunk
layout, write rows through h5py (:func:`write_set`) or pre-compressed chunks (:func:`encode_chunk` +
:func:`write_chunk`, the builder's workers), and mark a set complete last (:mod:`bamkit.data.h5` explains the
layout and why a set is valid only once ``complete`` is written)."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.data.h5 import (
    EXTRA_FIELDS,
    FIELDS,
    GZIP_LEVEL,
    LIBVER,
    SCHEMA_VERSION,
    check_schema,
    fail_if_not_file,
    row_shape,
)
from bamkit.errors import DataError


def write_attrs(obj: h5py.Group | h5py.Dataset, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        if isinstance(v, (dict, list, tuple)) and not (
            isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v)
        ):
            obj.attrs[k] = "json:" + json.dumps(v, sort_keys=True, default=str)
        elif isinstance(v, (list, tuple)):
            obj.attrs[k] = np.array(list(v), dtype=h5py.string_dtype())
        elif v is None:
            obj.attrs[k] = "json:null"
        else:
            obj.attrs[k] = v


def compressed(field: str, compress_images: bool) -> bool:
    """Whether ``field`` is deflate-compressed in a file with the given ``compress_images`` setting."""
    return compress_images or field != "images"


def create_file(
    path: str | Path,
    object_classes: list[str],
    scene_classes: list[str],
    image_size: int,
    attrs: Mapping[str, Any] | None = None,
    compress_images: bool = False,
) -> h5py.File:
    """Create a new dataset file (overwriting ``path``) with the reproducible settings and file attributes.

    Args:
        path: where to write (the builder passes its temporary name).
        object_classes: label names of ``object_label``; scene_classes: of ``scene_label``.
        image_size: the side H = W of every image in the file.
        attrs: more file attributes (``recipe``, ``seed``, ``provenance`` …); dicts are stored as JSON.
        compress_images: deflate the ``images`` datasets too (smaller, slower; recorded in the file).

    Returns:
        the open, writable h5py file (the caller closes it).
    """
    import bamkit

    f = h5py.File(path, "w", track_order=True, libver=LIBVER)
    base = {
        "schema_version": SCHEMA_VERSION,
        "bamkit_version": bamkit.__version__,
        "object_classes": list(object_classes),
        "scene_classes": list(scene_classes),
        "image_size": int(image_size),
        "compress_images": bool(compress_images),
    }
    write_attrs(f, {**base, **dict(attrs or {})})
    return f


@contextlib.contextmanager
def open_for_append(path: str | Path) -> Iterator[h5py.File]:
    """Open a built dataset file ``r+`` to add or replace a set with :func:`write_set`.

    Example:
        >>> with open_for_append("bam.h5") as h5:
        ...     write_set(h5, "bamboo_forest_patch", arrays, attrs={"model": "f_empty"})
    """
    p = Path(path)
    fail_if_not_file(p)
    f = h5py.File(p, "r+")
    try:
        check_schema(f, p)
        yield f
    finally:
        f.close()


def extra_dtype(field: str, arr: np.ndarray | None = None) -> np.dtype:
    """The on-disk dtype of a provenance field (``source_scene`` keeps the width of the strings given)."""
    if field == "source_scene":
        width = max(1, arr.dtype.itemsize) if arr is not None else 1
        return np.dtype(f"S{width}")
    return EXTRA_FIELDS[field]


def create_set(
    h5: h5py.File,
    name: str,
    n: int,
    size: int,
    extra: Mapping[str, np.dtype] | None = None,
    chunk_rows: int = 64,
) -> h5py.Group:
    """Create (replacing any existing) the empty group and datasets of one set with the shared layout.

    Args:
        h5: a writable dataset file.
        name: set name; ``/`` nests groups (``commonality/k0.5``).
        n: number of rows (>= 1).
        size: image side.
        extra: provenance fields to create as well, name -> on-disk dtype.
        chunk_rows: rows per chunk of every dataset (capped at ``n``).

    Returns:
        the set's group (its ``complete`` attribute is not set yet; see :func:`mark_complete`).
    """
    if n < 1:
        raise DataError(f"set {name!r} would have {n} rows; a set needs at least one row")
    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if name in h5:
        del h5[name]
    parent = h5
    parts = name.split("/")
    for part in parts[:-1]:
        parent = parent[part] if part in parent else parent.create_group(part, track_order=True)
    g = parent.create_group(parts[-1], track_order=True)
    rows = min(chunk_rows, n)
    compress_images = bool(h5.file.attrs.get("compress_images", False))
    specs = [(k, dt) for k, dt in FIELDS.items()] + list((extra or {}).items())
    for field, dt in specs:
        shape = row_shape(field, size)
        g.create_dataset(
            field,
            shape=(n, *shape),
            dtype=dt,
            chunks=(rows, *shape),
            compression="gzip" if compressed(field, compress_images) else None,
            compression_opts=GZIP_LEVEL if compressed(field, compress_images) else None,
            track_times=False,
        )
    return g


def mark_complete(g: h5py.Group, attrs: Mapping[str, Any] | None = None) -> None:
    """Write the set's attributes and, last, ``complete = True``."""
    write_attrs(g, dict(attrs or {}))
    g.attrs["complete"] = True


def encode_chunk(rows: np.ndarray, chunk_rows: int, compress: bool = True) -> bytes:
    """One chunk's bytes exactly as HDF5 stores them (zero padding past the last row; deflated if ``compress``).

    Args:
        rows: (r, ...) with r <= chunk_rows, already in the on-disk dtype.
        chunk_rows: the dataset's chunk height.
        compress: whether the dataset has the gzip filter (:func:`compressed`).

    Returns:
        bytes for ``h5py.Dataset.id.write_direct_chunk``.
    """
    if rows.shape[0] < chunk_rows:
        pad = np.zeros((chunk_rows - rows.shape[0], *rows.shape[1:]), dtype=rows.dtype)
        rows = np.concatenate([rows, pad])
    raw = np.ascontiguousarray(rows).tobytes()
    return zlib.compress(raw, GZIP_LEVEL) if compress else raw


def write_chunk(d: h5py.Dataset, chunk: int, data: bytes) -> tuple[int, int]:
    """Store pre-compressed chunk number ``chunk`` (rows ``chunk*chunk_rows`` …) of dataset ``d``.

    Returns:
        ``(byte_offset, size)`` of the stored bytes in the file (HDF5 writes a direct chunk through to the
        operating system at once, so after a crash of the process they can still be read at that offset).
    """
    offset = (chunk * d.chunks[0],) + (0,) * (d.ndim - 1)
    d.id.write_direct_chunk(offset, data, 0)
    info = d.id.get_chunk_info_by_coord(offset)
    return int(info.byte_offset), int(info.size)


def _as_field(name: str, field: str, value: Any, n: int | None, size: int | None) -> np.ndarray:
    arr = np.asarray(value)
    dt = FIELDS.get(field) or (extra_dtype(field, arr) if field in EXTRA_FIELDS else None)
    if dt is None:
        raise DataError(
            f"write_set({name!r}): unknown dataset {field!r}; expected {', '.join([*FIELDS, *EXTRA_FIELDS])}"
        )
    if arr.dtype != dt:
        cast = arr.astype(dt)
        if field != "source_scene" and not np.array_equal(cast, arr):
            raise DataError(
                f"write_set({name!r}): {field!r} has dtype {arr.dtype} whose values do not fit {dt}; "
                f"pass {dt} data"
            )
        arr = cast
    if n is not None and arr.shape[0] != n:
        raise DataError(f"write_set({name!r}): {field!r} has {arr.shape[0]} rows, 'images' has {n}")
    if size is not None:
        expected = row_shape(field, size)
        if tuple(arr.shape[1:]) != expected:
            raise DataError(
                f"write_set({name!r}): {field!r} rows have shape {tuple(arr.shape[1:])}, expected {expected}"
            )
    return arr


def write_set(
    h5: h5py.File,
    name: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    chunk_rows: int = 64,
) -> None:
    """Write (or replace) one whole set with the layout of docs/design.md#the-dataset-file.

    Args:
        h5: the file from :func:`open_for_append` (or :func:`create_file`).
        name: set name, e.g. ``"bamboo_forest_patch"``.
        arrays: every name of :data:`FIELDS` (images (N,H,W,3) uint8, masks (N,H,W) bool, boxes (N,4) int32,
            object_label/scene_label (N,) int16, split (N,) uint8, pair_index (N,) int32) and optionally
            :data:`EXTRA_FIELDS`; other integer dtypes are accepted when every value fits.
        attrs: the set's attributes (dicts are stored as JSON).
        chunk_rows: rows per chunk (the builder's recipe uses the same default).
    """
    missing = [k for k in FIELDS if k not in arrays]
    if missing:
        raise DataError(
            f"write_set({name!r}): missing dataset(s) {', '.join(missing)}; docs/design.md#the-dataset-file lists all seven"
        )
    images = np.asarray(arrays["images"])
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"write_set({name!r}): 'images' has shape {images.shape}, expected (N, H, H, 3)")
    n, size = images.shape[0], images.shape[1]
    file_size = int(h5.attrs.get("image_size", size))
    if size != file_size:
        raise DataError(f"write_set({name!r}): images are {size} px, the file's images are {file_size} px")
    data = {k: _as_field(name, k, v, n, size) for k, v in arrays.items()}
    extra = {k: v.dtype for k, v in data.items() if k not in FIELDS}
    g = create_set(h5, name, n, size, extra=extra, chunk_rows=chunk_rows)
    step = g["images"].chunks[0]
    for start in range(0, n, step):
        for k, v in data.items():
            g[k][start : start + step] = v[start : start + step]
    mark_complete(g, attrs)
