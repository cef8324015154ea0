"""The BAM dataset file: schema and lazy reader (docs/design.md#the-dataset-file); writing is :mod:`bamkit.data.h5_write`.

One HDF5 file holds every set of a build. Each set is a group (``obj_scene``, ``commonality/k0.3`` …) holding
the layout's datasets (:data:`FIELDS`) plus optional provenance datasets (:data:`EXTRA_FIELDS`). All datasets of
a set are chunked along rows with the same ``chunk_rows``. Every dataset except ``images`` is deflate-compressed
at :data:`GZIP_LEVEL` (masks shrink ~40x for almost no time); ``images`` are stored raw unless the file was
created with ``compress_images=True`` (file attribute), because deflate saves only ~28 % on natural images and
would cost more time than everything else in a build together (measured in ``bench/build.py``). The builder
compresses chunks in worker processes and stores them with ``write_direct_chunk`` while :func:`write_set`
(used by later stages, e.g. the δ patches) writes the same layout through h5py.

Files are byte-reproducible: creation order is tracked, no object carries a timestamp (``track_times=False``),
the library version bounds are pinned and nothing run-specific (paths of the output, argv, worker count) is
stored. A set is listed by :meth:`BamFile.sets` only once its ``complete`` attribute is written, which
happens last, so a half-written set (an interrupted :func:`write_set`) is never read as valid.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.errors import DataError

SCHEMA_VERSION = 1

# The layout's datasets of every set (docs/design.md#the-dataset-file): name -> dtype. Shapes: images (N,H,W,3), masks (N,H,W), boxes (N,4), rest (N,).
FIELDS: dict[str, np.dtype] = {
    "images": np.dtype(np.uint8),
    "masks": np.dtype(np.bool_),
    "boxes": np.dtype(np.int32),
    "object_label": np.dtype(np.int16),
    "scene_label": np.dtype(np.int16),
    "split": np.dtype(np.uint8),
    "pair_index": np.dtype(np.int32),
}
# Optional per-row provenance written by the builder (other writers may leave them out):
#   object_index   i of the (object, scene, i) composite the row comes from or pairs with; -1 where none
#   paired_object  label of the object whose mask the row carries (also in scene_only rows, which have
#                  object_label -1 because no object is visible); -1 where none
#   source_object  COCO (image_id, annotation_id) of that object; -1s where none
#   source_scene   MiniPlaces file of the scene pixels, relative to the MiniPlaces root; b"" where none
# ``source_scene`` is fixed-length bytes whose width the writer chooses (see :func:`extra_dtype`).
EXTRA_FIELDS: dict[str, np.dtype] = {
    "object_index": np.dtype(np.int32),
    "paired_object": np.dtype(np.int16),
    "source_object": np.dtype(np.int64),
    "source_scene": np.dtype("S1"),
}
# Level 2 (zlib's fast deflate): masks compress as well as at level 4 (measured ~22 KB per 64 x 128 x 128
# chunk either way) in half the time.
GZIP_LEVEL = 2
LIBVER = ("earliest", "v110")
SPLIT_TRAIN, SPLIT_VAL = 0, 1


def row_shape(field: str, size: int) -> tuple[int, ...]:
    """Shape of one row of ``field`` in a file whose images are ``size`` x ``size``."""
    if field == "images":
        return (size, size, 3)
    if field == "masks":
        return (size, size)
    if field in ("boxes",):
        return (4,)
    if field == "source_object":
        return (2,)
    return ()


def fail_if_not_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(
            f"dataset file {str(path)!r} does not exist; build it with 'bamkit build RECIPE.yaml'"
        )
    if not h5py.is_hdf5(path):
        raise DataError(f"{str(path)!r} is not an HDF5 file; pass a dataset built by 'bamkit build'")


def check_schema(f: h5py.File, path: Path) -> None:
    version = f.attrs.get("schema_version")
    if version is None:
        raise DataError(f"{str(path)!r} has no 'schema_version' attribute; it was not written by bamkit")
    if int(version) != SCHEMA_VERSION:
        raise DataError(
            f"{str(path)!r} has schema_version {int(version)}, this bamkit reads {SCHEMA_VERSION}; "
            "rebuild the dataset with this version ('bamkit build')"
        )


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return [_text(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _read_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    out = {k: _text(v) for k, v in attrs.items()}
    for k, v in list(out.items()):
        # JSON-valued attributes are stored with a ``json:`` prefix so readers get the structure back.
        if isinstance(v, str) and v.startswith("json:"):
            out[k] = json.loads(v[5:])
    return out


class SetView:
    """One set of a :class:`BamFile`; reads rows lazily.

    Args:
        bf: the owning file.
        name: the set's name, e.g. ``"obj_scene"`` or ``"commonality/k0.3"``.
    """

    def __init__(self, bf: BamFile, name: str) -> None:
        self._bf = bf
        self.name = name
        g = bf._handle()[name]
        self._len = int(g["images"].shape[0])
        self.attrs: dict[str, Any] = _read_attrs(g.attrs)
        self.fields: list[str] = list(g.keys())

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"SetView({self.name!r}, n={self._len})"

    def has_field(self, field: str) -> bool:
        """Whether the set holds dataset ``field`` (a layout field or an extra one such as δ's ``passed``)."""
        return field in self._bf._handle()[self.name]

    def read(self, field: str, idx: slice | np.ndarray | list[int] | int | None = None) -> np.ndarray:
        """Read rows of one dataset.

        Args:
            field: a dataset name (:data:`FIELDS`, or an extra provenance field present in the set).
            idx: ``None`` for all rows, a slice, one int, or an int array in any order (duplicates allowed);
                a bool array of length ``len(self)`` selects rows.

        Returns:
            numpy array, e.g. ``images`` (n, H, W, 3) uint8, ``masks`` (n, H, W) bool, ``boxes`` (n, 4) int32.
        """
        g = self._bf._handle()[self.name]
        if field not in g:
            raise DataError(
                f"set {self.name!r} of {str(self._bf.path)!r} has no dataset {field!r}; "
                f"it has {', '.join(self.fields)}"
            )
        d = g[field]
        if idx is None:
            return self._guarded(d, (), field, "all rows")
        if isinstance(idx, slice):
            start, stop, _ = idx.indices(self._len)
            return self._guarded(d, idx, field, f"rows {start}-{max(stop - 1, start)}")
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            if not -self._len <= i < self._len:
                raise DataError(f"row {i} is out of range for set {self.name!r} with {self._len} rows")
            return self._guarded(d, i % self._len, field, f"row {i % self._len}")
        arr = np.asarray(idx)
        if arr.dtype == np.bool_:
            if arr.shape != (self._len,):
                raise DataError(f"bool row selector has shape {arr.shape}, expected ({self._len},)")
            arr = np.flatnonzero(arr)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"row indices must be a 1-D int array, got dtype {arr.dtype} shape {arr.shape}")
        if arr.size == 0:
            return np.empty((0, *d.shape[1:]), dtype=d.dtype)
        arr = np.where(arr < 0, arr + self._len, arr)
        if arr.min() < 0 or arr.max() >= self._len:
            raise DataError(f"row indices out of range for set {self.name!r} with {self._len} rows")
        # h5py needs increasing unique indices: read those, then restore the caller's order.
        uniq, inverse = np.unique(arr, return_inverse=True)
        return self._guarded(d, uniq, field, f"rows {int(uniq[0])}-{int(uniq[-1])}")[inverse]

    def _guarded(self, d, sel, field: str, rows: str) -> np.ndarray:
        """``d[sel]``, with HDF5's read failures (a corrupt compressed chunk: "filter returned failure", a
        truncated file) turned into one line naming the file, set, field and rows."""
        try:
            return d[sel]
        except OSError as e:
            raise DataError(
                f"{str(self._bf.path)!r} is damaged: reading {self.name}/{field} {rows} failed ({e}); "
                "rebuild the file with 'bamkit build --force' (or restore it from a copy)"
            ) from e


class BamFile:
    """Read-only, lazy view of a dataset file; picklable (it re-opens the file in each process).

    Example:
        >>> with BamFile("bam.h5") as bf:
        ...     view = bf["obj_scene"]
        ...     x = view.read("images", slice(0, 8))   # (8, H, W, 3) uint8

    Args:
        path: the HDF5 file written by ``bamkit build``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._h: h5py.File | None = None
        self._pid = -1
        f = self._handle()
        self.attrs: dict[str, Any] = _read_attrs(f.attrs)
        self.object_classes: list[str] = list(self.attrs.get("object_classes", []))
        self.scene_classes: list[str] = list(self.attrs.get("scene_classes", []))
        self.image_size: int = int(self.attrs.get("image_size", 0))

    def _handle(self) -> h5py.File:
        # One handle per process: h5py handles must never cross a fork/spawn.
        if self._h is None or self._pid != os.getpid() or not self._h.id.valid:
            fail_if_not_file(self.path)
            try:
                self._h = h5py.File(self.path, "r")
            except OSError as e:
                raise DataError(
                    f"cannot open {str(self.path)!r}: {e}; the file may be incomplete or corrupt"
                ) from None
            self._pid = os.getpid()
            check_schema(self._h, self.path)
        return self._h

    def close(self) -> None:
        """Close the handle of this process (a later read re-opens it)."""
        if self._h is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._h.close()
        self._h = None

    def __enter__(self) -> BamFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h"] = None
        state["_pid"] = -1
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def sets(self) -> list[str]:
        """Names of the complete sets, in creation order (nested ones as ``commonality/k0.1``)."""
        return _list_sets(self._handle())

    def has(self, name: str) -> bool:
        """Whether the complete set ``name`` is in the file."""
        f = self._handle()
        return name in f and isinstance(f[name], h5py.Group) and bool(f[name].attrs.get("complete", False))

    def __getitem__(self, name: str) -> SetView:
        if not self.has(name):
            raise DataError(
                f"set {name!r} is not in {str(self.path)!r}; it has {', '.join(self.sets()) or 'no sets'} "
                "(build it with the recipe's 'sets' list, or run the stage that writes it)"
            )
        return SetView(self, name)

    def __repr__(self) -> str:
        return f"BamFile({str(self.path)!r})"


def _list_sets(g: h5py.Group, prefix: str = "") -> list[str]:
    out = []
    for k in g.keys():
        item = g[k]
        if not isinstance(item, h5py.Group):
            continue
        name = f"{prefix}{k}"
        if "images" in item:
            if bool(item.attrs.get("complete", False)):
                out.append(name)
        else:
            out.extend(_list_sets(item, prefix=name + "/"))
    return out
