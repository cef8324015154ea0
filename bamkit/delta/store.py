"""δ-patch file I/O: read the ``bamboo_forest`` inputs, keep per-batch progress, write ``bamboo_forest_patch``.

Where x + δ₀ comes from (docs/dataset.md#sets): the ``bamboo_forest`` rows are scene-only images of the (dog, bamboo_forest)
pair; the composite with the dog pasted in is the ``obj_scene`` row with the same ``pair_index``, and both rows
carry the same dog mask. So δ₀ = I_c ⊙ (x_composite − x) makes x + δ₀ the clean paste.

Writing (``write_patch_set``): the set is created with the dataset file's own layout (:func:`bamkit.data.h5.create_set`:
same chunking and compression as the builder), holding the layout's fields copied from ``bamboo_forest`` (the
patched images replace ``images``), the per-image figures of :data:`bamkit.delta.verify.FIGURES` as (N,)
datasets, and ``clipped`` (N,H,W) bool (which pixels were clipped to [0, 255]). ``complete`` is written last,
so an interrupted write never leaves a set that readers accept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit import atomic
from bamkit.data import h5 as bh5
from bamkit.data import h5_write as h5w
from bamkit.delta.verify import FIGURES
from bamkit.errors import DataError

log = logging.getLogger(__name__)

SCENE_SET = "bamboo_forest"
SOURCE_SET = "obj_scene"
PATCH_SET = "bamboo_forest_patch"


@dataclass
class DeltaInputs:
    """Everything the optimiser needs, read from a dataset file.

    Attributes:
        scene: uint8 (N,H,W,3), the ``bamboo_forest`` images x.
        dog: uint8 (N,H,W,3), the ``obj_scene`` composites of the same pairs (x with the dog pasted in).
        masks: bool (N,H,W), the dog masks I_c.
        fields: every dataset of the ``bamboo_forest`` set (the layout's fields and provenance), copied to the patch set.
        file_attrs: the dataset file's attributes (classes, image size, recipe, seed …).
        input_hash: sha256 over scene, dog and masks: whether a stored patch set is current.
    """

    scene: np.ndarray
    dog: np.ndarray
    masks: np.ndarray
    fields: dict[str, np.ndarray]
    file_attrs: dict[str, Any]
    input_hash: str

    def __len__(self) -> int:
        return len(self.scene)


def _hash_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def read_inputs(path: str | Path, scene_set: str = SCENE_SET, source_set: str = SOURCE_SET) -> DeltaInputs:
    """Read the scene images, their dog composites and masks (the set is small: BAM's has 100 rows).

    Raises:
        DataError: a set is missing, a ``pair_index`` has no composite, or the masks of a pair disagree.
    """
    with bh5.BamFile(path) as bf:
        for name in (scene_set, source_set):
            if not bf.has(name):
                raise DataError(
                    f"{str(path)!r} has no {name!r} set, which the δ patches need; "
                    f"it has {', '.join(bf.sets()) or 'no sets'} (add {name!r} to the recipe's sets and rebuild)"
                )
        view = bf[scene_set]
        fields = {k: view.read(k) for k in view.fields if k in bh5.FIELDS or k in bh5.EXTRA_FIELDS}
        pairs = fields["pair_index"].astype(np.int64)
        src_pairs = bf[source_set].read("pair_index").astype(np.int64)
        order = np.argsort(src_pairs, kind="stable")
        pos = np.searchsorted(src_pairs[order], pairs)
        pos = np.clip(pos, 0, max(len(order) - 1, 0))
        found = (len(order) > 0) & (src_pairs[order][pos] == pairs)
        if not np.all(found):
            missing = pairs[~found][:5].tolist()
            raise DataError(
                f"{scene_set!r} rows with pair_index {missing} have no {source_set!r} composite in {str(path)!r}; "
                f"the dog for δ₀ comes from there — rebuild with both sets from the same recipe"
            )
        rows = order[pos]
        dog = bf[source_set].read("images", rows)
        dog_masks = bf[source_set].read("masks", rows)
        file_attrs = dict(bf.attrs)
    masks = fields["masks"].astype(bool)
    bad = np.flatnonzero((dog_masks != masks).reshape(len(masks), -1).any(1))
    if bad.size:
        raise DataError(
            f"the masks of {scene_set!r} rows {bad[:5].tolist()} differ from those of their {source_set!r} "
            "composites; the scene-only mask must be where the object is in the paired composite (docs/design.md#the-dataset-file) — rebuild"
        )
    if not masks.reshape(len(masks), -1).any(1).all():
        empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(1))[:5].tolist()
        raise DataError(
            f"{scene_set!r} rows {empty} have an empty dog mask; δ would be empty — rebuild the set"
        )
    scene = fields["images"]
    return DeltaInputs(scene, dog, masks, fields, file_attrs, _hash_arrays(scene, dog, masks))


class PartialRun:
    """Per-batch results of an unfinished run, in a side folder, so a killed run resumes where it stopped.

    Each finished batch is one ``batch_NNNNN.npz`` written atomically; ``key.json`` holds the run's key (inputs,
    model, options). A folder with another key belongs to a different run and is cleared.

    Args:
        folder: e.g. ``<out>.delta-parts``.
        key: the run's key (see :func:`bamkit.delta.craft.run_key`).
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        key_file = self.folder / "key.json"
        if self.folder.exists():
            old = None
            with contextlib.suppress(OSError, ValueError):
                old = json.loads(key_file.read_text()).get("key")
            if old != key:
                log.warning(
                    "discarding partial δ results in %s: they belong to other inputs/options", self.folder
                )
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            atomic.write_text(key_file, json.dumps({"key": key}))

    def _file(self, batch: int) -> Path:
        return self.folder / f"batch_{batch:05d}.npz"

    def load(self, batch: int) -> dict[str, np.ndarray] | None:
        """The stored arrays of ``batch``, or None if it has not finished."""
        f = self._file(batch)
        if not f.is_file():
            return None
        try:
            with np.load(f) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable partial batch %s (%s); recomputing it", f, e)
            return None

    def save(self, batch: int, arrays: dict[str, np.ndarray]) -> None:
        """Persist one finished batch (temp file + rename: a kill leaves either nothing or the whole batch)."""
        with atomic.atomic_path(self._file(batch)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    def done(self) -> int:
        """How many batch files exist."""
        return len(list(self.folder.glob("batch_*.npz")))

    def clear(self) -> None:
        """Remove the folder once the set is written."""
        shutil.rmtree(self.folder, ignore_errors=True)


def stored_key(path: str | Path, name: str = PATCH_SET) -> str | None:
    """The run key of a complete patch set in ``path`` that holds every figure, else None."""
    if not Path(path).is_file():
        return None
    try:
        with bh5.BamFile(path) as bf:
            if not bf.has(name):
                return None
            view = bf[name]
            if any(k not in view.fields for k in FIGURES):
                return None
            return view.attrs.get("key")
    except DataError:
        return None


def read_patch_set(path: str | Path, name: str = PATCH_SET) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """``(patched images (N,H,W,3) uint8, {figure: (N,)}, set attrs)`` of a stored patch set."""
    with bh5.BamFile(path) as bf:
        view = bf[name]
        missing = [k for k in FIGURES if k not in view.fields]
        if missing:
            raise DataError(
                f"set {name!r} of {str(path)!r} lacks the δ figures {missing}; it was not written by "
                "'bamkit delta' — re-run it"
            )
        return view.read("images"), {k: view.read(k) for k in FIGURES}, dict(view.attrs)


def _write_into(
    h: h5py.File,
    name: str,
    fields: dict[str, np.ndarray],
    figures: dict[str, np.ndarray],
    clipped: np.ndarray,
    attrs: dict[str, Any],
) -> None:
    n, size = fields["images"].shape[:2]
    extra = {k: v.dtype for k, v in fields.items() if k not in bh5.FIELDS}
    extra.update({k: np.dtype(FIGURES[k]) for k in FIGURES})
    g = h5w.create_set(h, name, n, size, extra=extra)
    rows = g["images"].chunks[0]
    g.create_dataset(
        "clipped",
        shape=clipped.shape,
        dtype=bool,
        chunks=(rows, *clipped.shape[1:]),
        compression="gzip",
        compression_opts=bh5.GZIP_LEVEL,
        track_times=False,
    )
    data = {**fields, **{k: np.asarray(v, dtype=FIGURES[k]) for k, v in figures.items()}, "clipped": clipped}
    for start in range(0, n, rows):
        for k, v in data.items():
            g[k][start : start + rows] = v[start : start + rows]
    h5w.mark_complete(g, attrs)


def write_patch_set(
    data: str | Path,
    out: str | Path,
    fields: dict[str, np.ndarray],
    figures: dict[str, np.ndarray],
    clipped: np.ndarray,
    attrs: dict[str, Any],
    name: str = PATCH_SET,
    copy_sets: tuple[str, ...] = (SCENE_SET,),
) -> Path:
    """Write the patch set.

    ``out == data``: added in place (:func:`bamkit.data.h5.open_for_append`). All optimisation is done before the
    file is opened for writing, the write takes a moment, and the set only counts once ``complete`` is written;
    copying a multi-GB dataset file to add 100 images would cost far more than it protects.
    ``out != data``: a new, small dataset file with the data file's attributes, a copy of ``copy_sets`` (the clean
    ``bamboo_forest`` inputs, so IIR can be computed from it alone) and the patch set — written to ``out.tmp`` and
    renamed into place, so ``out`` is either absent, the old file, or complete.

    Args:
        data: the dataset file the inputs came from.
        out: where the set goes.
        fields: the layout's fields (and provenance) of the patch set; ``images`` are the patched uint8 images.
        figures: per-image figures (:data:`bamkit.delta.verify.FIGURES`), (N,) each.
        clipped: bool (N,H,W), the clipped pixels.
        attrs: the set's attributes (options, model hash, seed, key …).

    Returns:
        ``out`` as a Path.
    """
    data, out = Path(data), Path(out)
    if out.resolve() == data.resolve():
        with h5w.open_for_append(out) as h:
            _write_into(h, name, fields, figures, clipped, attrs)
        return out
    with bh5.BamFile(data) as bf:
        file_attrs = {k: v for k, v in bf.attrs.items() if k not in ("schema_version", "bamkit_version")}
        known = {*bh5.FIELDS, *bh5.EXTRA_FIELDS}
        copies = {
            s: ({k: bf[s].read(k) for k in bf[s].fields if k in known}, dict(bf[s].attrs))
            for s in copy_sets
            if bf.has(s)
        }
    with atomic.atomic_path(out) as tmp:
        h = h5w.create_file(
            tmp,
            file_attrs.pop("object_classes", []),
            file_attrs.pop("scene_classes", []),
            int(file_attrs.pop("image_size", fields["images"].shape[1])),
            attrs=file_attrs,
        )
        try:
            for s, (arrays, set_attrs) in copies.items():
                set_attrs.pop("complete", None)
                h5w.write_set(h, s, arrays, attrs=set_attrs)
            _write_into(h, name, fields, figures, clipped, attrs)
        finally:
            h.close()
    return out
