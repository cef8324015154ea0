"""The attribution cache: 2-D maps (float16) + prediction, target and logit, keyed by
(model hash, set, image row, method + parameter hash, ``to_saliency`` mode) (docs/design.md#the-attribution-cache).

Every BAM metric is a cheap reduction over cached maps and masks, so a re-run with one new method computes only
that method, and an interrupted run resumes where it stopped.

Layout: a folder of HDF5 files, one per *writer* (``main.h5``, ``shard0of4.h5``, ``rank1of2.h5`` ...), so
processes never write the same file. Each file holds groups ``/<model hash>/<set>/<method key>/<mode>``
with row-aligned, append-only datasets ``row`` (int64), ``map`` (float16, (n, H, W)), ``prediction``,
``target`` (int64), ``logit`` (float32, the target's logit) and ``flag`` (uint8 bits: :data:`FLAG_CONSTANT` a map that cannot be scaled, :data:`FLAG_NONFINITE` NaN/Inf in the
method's attributions; docs/conventions.md#saliency-modes).
The group attribute ``n_done`` counts complete rows: a chunk is written, the file flushed, and only then
``n_done`` advanced, so rows of a killed write are ignored and overwritten on resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.errors import DataError

log = logging.getLogger(__name__)

FLAG_CONSTANT, FLAG_NONFINITE = 1, 2
MAP_DTYPE = np.float16
_FIELDS = {"row": np.int64, "prediction": np.int64, "target": np.int64, "logit": np.float32, "flag": np.uint8}


@dataclass(frozen=True)
class Entry:
    """Cached rows of one (model, set, method, saliency mode): arrays aligned with the requested rows."""

    maps: np.ndarray  # (n, H, W) float32
    prediction: np.ndarray  # (n,) int64
    target: np.ndarray  # (n,) int64
    logit: np.ndarray  # (n,) float32
    flag: np.ndarray  # (n,) bool


def model_token(model_hash: str) -> str:
    """16 hex characters naming a model in the cache and the tables: the prefix of a checkpoint's sha256; any
    other key (models handed to ``evaluate(loaded_models=…)`` with a key of their own) is hashed first, so two
    keys that merely share a prefix never share maps."""
    if re.fullmatch(r"[0-9a-f]{64}", model_hash):
        return model_hash[:16]
    return hashlib.sha256(model_hash.encode()).hexdigest()[:16]


def group_name(model_hash: str, set_name: str, method_key: str, mode: str) -> str:
    return f"{model_token(model_hash)}/{set_name}/{method_key}/{mode}"


# per cached row beside its map: the row-aligned fields
ROW_BYTES = sum(np.dtype(dt).itemsize for dt in _FIELDS.values())


def map_bytes(rows: int, side: int, methods: int, modes: int) -> int:
    """Bytes ``rows`` images add to the cache: one float16 ``side``×``side`` map per method and mode, plus the
    per-row fields. At the paper's scale (ResNet-50, 224 px) a map is 100 KB."""
    return rows * methods * modes * (np.dtype(MAP_DTYPE).itemsize * side * side + ROW_BYTES)


def check_room(folder: Path, need: int, have: int) -> None:
    """Stop before the first attribution when the cache cannot fit on its disk: ``need`` is this run's estimate
    (:func:`map_bytes` over its legs), ``have`` what the cache folder already holds (resumed rows are not
    written again, so at most ``need − have`` more is written)."""
    more = need - have
    free = shutil.disk_usage(folder).free
    if more > free:
        raise DataError(
            f"the attribution cache in {str(folder)!r} needs about {more / 1e9:.2f} GB more (float16 maps, "
            f"{need / 1e9:.2f} GB in all) but the disk has {free / 1e9:.2f} GB free; free space, write the results "
            "elsewhere (--out), or split the run across disks (--shard i/n)"
        )


class AttributionCache:
    """Append-only, resumable attribution cache in ``folder``.

    Args:
        folder: the cache folder (created).
        writer: this process's file stem; only this file is ever written by this object.
        concurrent: stems of files that other processes may be writing right now; they are not read
            (an HDF5 file being written cannot be read safely).
        read_only: other cache folders read but never written (a finished run's, when ``bamkit score`` adds
            methods to it); this folder's rows win over theirs.
    """

    def __init__(
        self,
        folder: str | Path,
        writer: str = "main",
        concurrent: tuple[str, ...] = (),
        read_only: tuple[str | Path, ...] = (),
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = writer
        self.path = self.folder / f"{writer}.h5"
        self.read_only = tuple(Path(p) for p in read_only if Path(p).is_dir() and Path(p) != self.folder)
        self._h5 = self._open_writer()
        self._readers: dict[Path, h5py.File] = {}
        self._fresh: set[str] = set()
        others = [p for d in self.read_only for p in sorted(d.glob("*.h5"))]
        for p in [*others, *sorted(self.folder.glob("*.h5"))]:
            if p == self.path or (p.parent == self.folder and p.stem in concurrent):
                continue
            try:
                self._readers[p] = h5py.File(p, "r")
            except OSError as e:  # a file from a killed writer that HDF5 cannot open: skip it, keep it
                log.warning("attribution cache: ignoring unreadable %s (%s)", p, e)
        self._index: dict[str, dict[int, tuple[h5py.File, int]]] = {}

    def _open_writer(self) -> h5py.File:
        try:
            return h5py.File(self.path, "a")
        except OSError as e:
            bad = self.path.with_suffix(".h5.corrupt")
            log.warning(
                "attribution cache %s is corrupt (%s); moved to %s and starting afresh", self.path, e, bad
            )
            os.replace(self.path, bad)
            return h5py.File(self.path, "a")

    # -- whole-set results (TCAV's scores) ---------------------------------------------------------------
    def get_json(self, kind: str, key: str) -> Any:
        """A cached JSON result ``<folder>/<kind>/<key>.json`` (this folder first, then the read-only ones)."""
        for d in (self.folder, *self.read_only):
            p = d / kind / f"{key}.json"
            if p.is_file():
                try:
                    return json.loads(p.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as e:  # a torn file is recomputed, not trusted
                    log.warning("attribution cache: ignoring unreadable %s (%s)", p, e)
        return None

    def put_json(self, kind: str, key: str, value: Any) -> None:
        """Store a JSON result in this folder (atomically: a reader never sees half a file)."""
        from bamkit import atomic

        (self.folder / kind).mkdir(exist_ok=True)
        atomic.write_text(self.folder / kind / f"{key}.json", json.dumps(value, default=str))

    def size(self) -> int:
        """Bytes the cache folder's files hold now (what a resumed run does not write again)."""
        return sum(p.stat().st_size for p in self.folder.glob("*.h5") if p.is_file())

    def close(self) -> None:
        for f in [self._h5, *self._readers.values()]:
            try:
                f.close()
            except Exception:  # noqa: BLE001 — closing a broken handle must not hide the real error
                pass
        self._readers.clear()

    def __enter__(self) -> AttributionCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError("AttributionCache holds open HDF5 handles; create one per process")

    # -- lookup -------------------------------------------------------------------------------------------
    def recompute(self, method_key: str) -> None:
        """Forget every cached map of ``method_key`` (``--recompute``): its groups in this process's file are
        deleted and the other files are not read for it, so the next maps computed are the ones used."""
        self._fresh.add(method_key)
        found: list[str] = []
        self._h5.visit(lambda name: found.append(name) if name.rsplit("/", 1)[-1] == method_key else None)
        for name in found:
            del self._h5[name]
        self._h5.flush()
        self._index.clear()

    def _group_index(self, name: str) -> dict[int, tuple[h5py.File, int]]:
        idx = self._index.get(name)
        if idx is None:
            idx = {}
            fresh = any(f"/{k}/" in f"/{name}/" for k in self._fresh)
            files = [self._h5] if fresh else [*self._readers.values(), self._h5]
            for f in files:  # the writer last: its rows win on duplicates
                g = f.get(name)
                if g is None:
                    continue
                n = int(g.attrs.get("n_done", 0))
                for pos, r in enumerate(g["row"][:n].tolist()):
                    idx[int(r)] = (f, pos)
            self._index[name] = idx
        return idx

    def present(
        self, model_hash: str, set_name: str, method_key: str, mode: str, rows: np.ndarray
    ) -> np.ndarray:
        """Bool (len(rows),): which rows are cached for this key."""
        idx = self._group_index(group_name(model_hash, set_name, method_key, mode))
        return np.fromiter((int(r) in idx for r in rows), dtype=bool, count=len(rows))

    def read(self, model_hash: str, set_name: str, method_key: str, mode: str, rows: np.ndarray) -> Entry:
        """The cached arrays for ``rows`` (all must be present), in the order of ``rows``."""
        name = group_name(model_hash, set_name, method_key, mode)
        idx = self._group_index(name)
        missing = [int(r) for r in rows if int(r) not in idx]
        if missing:
            raise KeyError(f"rows {missing[:5]} of {name} are not cached")
        out: dict[str, np.ndarray] = {}
        by_file: dict[int, list[tuple[int, int]]] = {}
        files: dict[int, h5py.File] = {}
        for i, r in enumerate(rows):
            f, pos = idx[int(r)]
            by_file.setdefault(id(f), []).append((pos, i))
            files[id(f)] = f
        for fid, items in by_file.items():
            g = files[fid][name]
            items.sort()
            pos = np.array([p for p, _ in items])
            dest = np.array([i for _, i in items])
            for key in ("map", *_FIELDS):
                if key == "row":
                    continue
                arr = g[key][pos]  # h5py needs increasing indices: read sorted, then scatter
                if key not in out:
                    out[key] = np.empty(
                        (len(rows), *arr.shape[1:]), dtype=np.float32 if key == "map" else arr.dtype
                    )
                out[key][dest] = arr
        return Entry(
            maps=out["map"],
            prediction=out["prediction"],
            target=out["target"],
            logit=out["logit"],
            flag=out["flag"].astype(np.uint8),
        )

    # -- write --------------------------------------------------------------------------------------------
    def write(
        self,
        model_hash: str,
        set_name: str,
        method_key: str,
        mode: str,
        rows: np.ndarray,
        maps: np.ndarray,
        prediction: np.ndarray,
        target: np.ndarray,
        logit: np.ndarray,
        flag: np.ndarray | None = None,
    ) -> None:
        """Append rows (write, flush, then advance ``n_done``: a kill mid-write loses only this chunk)."""
        n = len(rows)
        if maps.ndim != 3 or maps.shape[0] != n:
            raise ValueError(f"cache.write: maps must be (n, H, W) with n = {n}, got {maps.shape}")
        name = group_name(model_hash, set_name, method_key, mode)
        g = self._h5.get(name)
        if g is None:
            g = self._h5.create_group(name)
            h, w = maps.shape[1:]
            g.create_dataset(
                "map",
                shape=(0, h, w),
                maxshape=(None, h, w),
                dtype=MAP_DTYPE,
                chunks=(max(1, min(64, 2**20 // (np.dtype(MAP_DTYPE).itemsize * h * w))), h, w),
            )
            for key, dt in _FIELDS.items():
                g.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
            g.attrs["n_done"] = 0
        start = int(g.attrs["n_done"])
        if g["map"].shape[1:] != maps.shape[1:]:
            raise ValueError(f"cache.write: {name} holds {g['map'].shape[1:]} maps, got {maps.shape[1:]}")
        data = {
            "map": maps.astype(MAP_DTYPE),
            "row": rows,
            "prediction": prediction,
            "target": target,
            "logit": logit,
            "flag": np.zeros(n, np.uint8) if flag is None else flag,
        }
        for key, arr in data.items():
            ds = g[key]
            ds.resize(start + n, axis=0)
            ds[start : start + n] = np.asarray(arr).astype(ds.dtype, copy=False)
        self._h5.flush()
        g.attrs["n_done"] = start + n
        self._h5.flush()
        idx = self._index.get(name)
        if idx is not None:
            for pos, r in enumerate(np.asarray(rows).tolist()):
                idx[int(r)] = (self._h5, start + pos)
