"""Summarise a dataset file and check its invariants (``bamkit inspect``; docs/design.md#the-dataset-file, docs/dataset.md#sets).

Checks, each streamed over row blocks so memory stays bounded:

* ``schema``: every dataset of the layout present with its dtype and shape, all of a set's datasets the same length;
* ``labels``: object/scene labels in ``-1 … n_classes-1``, ``split`` in {0, 1};
* ``masks``: non-empty wherever ``object_label >= 0`` (or a paired object is recorded), empty where the box is -1;
* ``boxes``: every mask lies inside its box;
* ``split``: validation exactly the last ``n_val`` indices of each pair (the recipe's ``val_fraction``);
* ``pairing``: ``scene_only == obj_scene`` outside the mask, ``obj_gray == obj_scene`` inside it and the gray
  value outside, identical masks, boxes and pair indices;
* ``commonality``: rows with the common feature equal their ``obj_scene`` row, rows without it their
  ``scene_only`` row (extra training scenes, ``pair_index`` -1, have none); only the recorded classes carry it;
* ``derived``: ``dog_bedroom`` and ``dog_bamboo_forest`` rows equal their ``obj_scene`` rows, ``bamboo_forest``
  rows their ``scene_only`` rows (mask included); ``bamboo_forest_patch`` differs from ``bamboo_forest`` only
  inside the masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bamkit.data.h5 import FIELDS, BamFile, SetView, row_shape
from bamkit.data.plan import DERIVED_SETS

BLOCK = 256


@dataclass
class InspectReport:
    """What ``bamkit inspect`` found.

    Attributes:
        path: the file; sets: per set, its row count and counts per split and class;
        failures: ``(check, message)`` for every violated invariant (empty when the file is valid).
    """

    path: str
    image_size: int
    object_classes: list[str]
    scene_classes: list[str]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    bytes_on_disk: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, check: str, message: str) -> None:
        self.failures.append((check, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "image_size": self.image_size,
            "bytes_on_disk": self.bytes_on_disk,
            "sets": self.sets,
            "failures": [{"check": c, "message": m} for c, m in self.failures],
        }

    def table(self) -> str:
        """A plain-text summary: one line per set, then per-class counts of the main sets."""
        total = sum(s["n"] for s in self.sets.values()) or 1
        lines = [
            f"{self.path}: {len(self.sets)} sets, {self.image_size} px, "
            f"{self.bytes_on_disk / 2**20:.1f} MiB ({self.bytes_on_disk / total:.0f} B/image)",
            f"{'set':<24}{'rows':>8}{'train':>8}{'val':>8}  attrs",
        ]
        for name, s in self.sets.items():
            extra = ", ".join(f"{k}={v}" for k, v in s.get("info", {}).items())
            lines.append(f"{name:<24}{s['n']:>8}{s['train']:>8}{s['val']:>8}  {extra}")
        for name, s in self.sets.items():
            for key, names in (("per_object", self.object_classes), ("per_scene", self.scene_classes)):
                counts = s.get(key, {})
                main = name in ("obj_scene", "scene_only", "obj_gray") or name.startswith("commonality/k1")
                if counts and main:
                    row = ", ".join(
                        f"{names[int(k)] if 0 <= int(k) < len(names) else k if int(k) >= 0 else 'none'}: "
                        f"{v[0]}/{v[1]}"
                        for k, v in sorted(counts.items(), key=lambda kv: int(kv[0]))
                    )
                    if row:
                        lines.append(f"  {name} {key.replace('per_', '')} train/val: {row}")
        lines.append("checks: " + ("all passed" if self.passed else f"{len(self.failures)} FAILED"))
        lines += [f"  FAILED {c}: {m}" for c, m in self.failures]
        return "\n".join(lines)


def _blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, BLOCK):
        yield slice(start, min(start + BLOCK, n))


def _counts(labels: np.ndarray, split: np.ndarray) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for lab in np.unique(labels):
        sel = labels == lab
        out[str(int(lab))] = [int((split[sel] == 0).sum()), int((split[sel] == 1).sum())]
    return out


def _span(any_along: np.ndarray) -> np.ndarray:
    """(n,) extent in pixels of the True entries of each row of an (n, size) bool array (0 when none)."""
    size = any_along.shape[1]
    first = np.argmax(any_along, axis=1)
    last = size - 1 - np.argmax(any_along[:, ::-1], axis=1)
    return np.where(any_along.any(axis=1), last - first + 1, 0)


def _first_bad(bad: np.ndarray, sl: slice) -> int:
    return int(sl.start + np.flatnonzero(bad)[0])


def _check_schema(rep: InspectReport, view: SetView, size: int) -> bool:
    from bamkit.data.h5 import EXTRA_FIELDS

    ok = True
    g = view._bf._handle()[view.name]
    n = len(view)
    for fname, dt in FIELDS.items():
        if fname not in g:
            rep.fail("schema", f"{view.name}: dataset {fname!r} is missing")
            ok = False
            continue
        d = g[fname]
        if d.dtype != dt:
            rep.fail("schema", f"{view.name}/{fname}: dtype {d.dtype}, expected {dt}")
            ok = False
        if d.shape != (n, *row_shape(fname, size)):
            rep.fail(
                "schema", f"{view.name}/{fname}: shape {d.shape}, expected {(n, *row_shape(fname, size))}"
            )
            ok = False
    for fname in EXTRA_FIELDS:
        if fname in g and g[fname].shape[0] != n:
            rep.fail("schema", f"{view.name}/{fname}: {g[fname].shape[0]} rows, images have {n}")
            ok = False
    return ok


def _check_rows(rep: InspectReport, view: SetView, recipe: dict[str, Any]) -> dict[str, Any]:
    """Per-row checks of one set; returns its counts."""
    nO, nS = len(rep.object_classes), len(rep.scene_classes)
    n_pair = int(recipe.get("images_per_pair", 0))
    n_val = int(round(n_pair * float(recipe.get("val_fraction", 0)))) if n_pair else 0
    has = set(view.fields)
    labels = {k: view.read(k) for k in ("object_label", "scene_label", "split", "pair_index")}
    obj, scn, split, pidx = (
        labels["object_label"],
        labels["scene_label"],
        labels["split"],
        labels["pair_index"],
    )
    paired = view.read("paired_object") if "paired_object" in has else obj
    for key, arr, hi in (("object_label", obj, nO), ("scene_label", scn, nS)):
        bad = (arr < -1) | (arr >= hi)
        if bad.any():
            rep.fail(
                "labels",
                f"{view.name}: {key} {int(arr[bad][0])} at row {int(np.flatnonzero(bad)[0])} "
                f"is outside -1..{hi - 1}",
            )
    if not np.isin(split, (0, 1)).all():
        rep.fail(
            "labels", f"{view.name}: split values {sorted(set(np.unique(split).tolist()) - {0, 1})} not 0/1"
        )
    if n_pair and n_val:
        index = view.read("object_index") if "object_index" in has else pidx % n_pair
        expected = ((index >= n_pair - n_val) & (index < n_pair)).astype(np.uint8)  # i >= n: extra X^k scenes
        bad = expected != split
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            rep.fail(
                "split",
                f"{view.name}: row {r} (index {int(index[r])}) has split {int(split[r])}, the rule "
                f"'last {n_val} of {n_pair} per pair are val' says {int(expected[r])}",
            )
    needs_mask = (obj >= 0) | (paired >= 0)
    for sl in _blocks(len(view)):
        masks, boxes = view.read("masks", sl), view.read("boxes", sl)
        nonempty = masks.any(axis=(1, 2))
        bad = needs_mask[sl] & ~nonempty
        if bad.any():
            rep.fail("masks", f"{view.name}: row {_first_bad(bad, sl)} has an object but an empty mask")
        bad = (boxes[:, 0] < 0) & nonempty
        if bad.any():
            rep.fail("masks", f"{view.name}: row {_first_bad(bad, sl)} has a mask but no box")
        rows, cols = masks.any(axis=2), masks.any(axis=1)
        size = masks.shape[1]
        ar = np.arange(size)
        inside_r = (ar[None] >= boxes[:, :1]) & (ar[None] < boxes[:, 2:3])
        inside_c = (ar[None] >= boxes[:, 1:2]) & (ar[None] < boxes[:, 3:4])
        bad = ((rows & ~inside_r).any(axis=1) | (cols & ~inside_c).any(axis=1)) & nonempty
        if bad.any():
            rep.fail("boxes", f"{view.name}: row {_first_bad(bad, sl)} has mask pixels outside its box")
        # the pasted cut-out spans its box (the box is the resized instance's own bounding box): a mask whose
        # extent is under half the box's larger side is a lost object (e.g. a 1-pixel mask), not a paste
        extent = np.maximum(_span(rows), _span(cols))
        box_side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        bad = nonempty & (boxes[:, 0] >= 0) & (2 * extent < box_side)
        if bad.any():
            r = _first_bad(bad, sl)
            i = r - sl.start
            rep.fail(
                "masks",
                f"{view.name}: row {r} has a mask spanning {int(extent[i])} px in a {int(box_side[i])} px box; "
                "the object was not pasted (rebuild the file)",
            )
    return {
        "n": len(view),
        "train": int((split == 0).sum()),
        "val": int((split == 1).sum()),
        "per_object": _counts(obj, split),
        "per_scene": _counts(scn, split),
    }


def _equal_where(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per row: ``a == b`` at every pixel where ``where`` (N, H, W) is true."""
    return ((a == b).all(axis=-1) | ~where).all(axis=(1, 2))


def _check_pairing(rep: InspectReport, bf: BamFile, gray_value: int) -> None:
    sets = [s for s in ("obj_scene", "scene_only", "obj_gray") if bf.has(s)]
    if "obj_scene" not in sets or len(sets) < 2:
        return
    views = {s: bf[s] for s in sets}
    n = len(views["obj_scene"])
    for s, v in views.items():
        if len(v) != n:
            rep.fail("pairing", f"{s} has {len(v)} rows, obj_scene has {n}")
            return
    for sl in _blocks(n):
        ref = views["obj_scene"]
        img, mask = ref.read("images", sl), ref.read("masks", sl)
        for s in sets[1:]:
            v = views[s]
            for key in ("masks", "boxes", "pair_index"):
                bad = (v.read(key, sl) != ref.read(key, sl)).reshape(sl.stop - sl.start, -1).any(axis=1)
                if bad.any():
                    rep.fail(
                        "pairing", f"{s}: row {_first_bad(bad, sl)} has a different {key} than obj_scene"
                    )
            other = v.read("images", sl)
            if s == "scene_only":
                bad = ~_equal_where(other, img, ~mask)
                if bad.any():
                    rep.fail(
                        "pairing",
                        f"scene_only row {_first_bad(bad, sl)} differs from obj_scene outside the mask",
                    )
            else:
                bad = ~_equal_where(other, img, mask)
                if bad.any():
                    rep.fail(
                        "pairing",
                        f"obj_gray row {_first_bad(bad, sl)} differs from obj_scene inside the mask",
                    )
                bad = ~_equal_where(other, np.full_like(other, gray_value), ~mask)
                if bad.any():
                    rep.fail(
                        "pairing",
                        f"obj_gray row {_first_bad(bad, sl)} is not gray {gray_value} outside the mask",
                    )


def _check_against(rep: InspectReport, bf: BamFile, name: str, check: str) -> None:
    """Rows of ``name`` equal obj_scene rows (with an object) or scene_only rows (without), by pair_index."""
    v = bf[name]
    feature_scenes = v.attrs.get("feature_scene_labels")
    for sl in _blocks(len(v)):
        pidx, obj, scn = v.read("pair_index", sl), v.read("object_label", sl), v.read("scene_label", sl)
        img, mask = v.read("images", sl), v.read("masks", sl)
        if feature_scenes is not None:
            bad = (obj >= 0) != np.isin(scn, feature_scenes)
            if bad.any():
                rep.fail(
                    check, f"{name}: row {_first_bad(bad, sl)} carries the feature iff its class is recorded"
                )
        paired = pidx >= 0  # a commonality set's extra training scenes (pair_index -1) have no pair to match
        for src, sel in (("obj_scene", (obj >= 0) & paired), ("scene_only", (obj < 0) & paired)):
            if not sel.any() or not bf.has(src):
                continue
            ref = bf[src]
            rows = np.flatnonzero(sel)
            ref_img = ref.read("images", pidx[rows])
            bad = (ref_img != img[rows]).reshape(len(rows), -1).any(axis=1)
            if bad.any():
                rep.fail(
                    check,
                    f"{name}: row {sl.start + int(rows[bad][0])} differs from {src} row "
                    f"{int(pidx[rows[bad][0]])}",
                )
            ref_mask = ref.read("masks", pidx[rows])
            carries = mask[rows].reshape(len(rows), -1).any(axis=1)
            bad = carries & (ref_mask != mask[rows]).reshape(len(rows), -1).any(axis=1)
            if bad.any():
                rep.fail(check, f"{name}: row {sl.start + int(rows[bad][0])} has a different mask than {src}")


def _check_patch(rep: InspectReport, bf: BamFile) -> None:
    if not (bf.has("bamboo_forest_patch") and bf.has("bamboo_forest")):
        return
    p, b = bf["bamboo_forest_patch"], bf["bamboo_forest"]
    if len(p) != len(b):
        rep.fail("derived", f"bamboo_forest_patch has {len(p)} rows, bamboo_forest {len(b)}")
        return
    for sl in _blocks(len(p)):
        mask = b.read("masks", sl)
        bad = ~_equal_where(p.read("images", sl), b.read("images", sl), ~mask)
        if bad.any():
            rep.fail(
                "derived",
                f"bamboo_forest_patch row {_first_bad(bad, sl)} changes pixels outside the dog mask",
            )


def inspect_file(path: str | Path) -> InspectReport:
    """Summarise ``path`` and check every invariant; never raises for a violation (see ``report.failures``).

    Raises:
        DataError: the file is missing or not a bamkit dataset file.
    """
    with BamFile(path) as bf:
        size = bf.image_size
        rep = InspectReport(
            str(path), size, bf.object_classes, bf.scene_classes, bytes_on_disk=Path(path).stat().st_size
        )
        recipe = yaml.safe_load(bf.attrs.get("recipe") or "{}") or {}
        gray_value = int(recipe.get("gray_value", 128))
        for name in bf.sets():
            view = bf[name]
            if not _check_schema(rep, view, size):
                rep.sets[name] = {"n": len(view), "train": 0, "val": 0}
                continue
            rep.sets[name] = _check_rows(rep, view, recipe)
            info = {k: view.attrs[k] for k in ("k", "feature_scenes", "object", "scene") if k in view.attrs}
            rep.sets[name]["info"] = info
        if not rep.failures:
            _check_pairing(rep, bf, gray_value)
            for name in bf.sets():
                if name.startswith("commonality/"):
                    _check_against(rep, bf, name, "commonality")
                elif name in DERIVED_SETS:
                    _check_against(rep, bf, name, "derived")
            _check_patch(rep, bf)
    return rep
