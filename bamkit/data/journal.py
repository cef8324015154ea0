"""The builder's crash-safe output: the ``<out>.parts/`` folder, the chunk writer that journals where each
stored chunk's bytes are, and the replay that resumes an interrupted build byte-identically
(:mod:`bamkit.data.build` explains why an interrupted HDF5 file is never reopened)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bamkit.data import h5 as H
from bamkit.data import h5_write as h5w
from bamkit.data.plan import Plan
from bamkit.data.workers import EXTRA, FIELD_ORDER, chunk_rows
from bamkit.errors import DataError
from bamkit.progress import bar

log = logging.getLogger(__name__)


def parts_dir(out: Path, key: str) -> Path:
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


def open_output(plan: Plan, path: Path, attrs: dict[str, Any], scene_width: int) -> h5py.File:
    """Create the output file and every set's empty datasets (the same calls on every run)."""
    r = plan.recipe
    f = h5w.create_file(
        path, list(r.objects), list(r.scenes), r.size, attrs, compress_images=r.compress_images
    )
    extra = {**{k: H.EXTRA_FIELDS[k] for k in EXTRA}, "source_scene": np.dtype(f"S{scene_width}")}
    for group in plan.groups:
        for name in group.sets:
            h5w.create_set(f, name, group.n_rows, r.size, extra=extra, chunk_rows=chunk_rows(plan, group))
    return f


class ChunkWriter:
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
        locs = [h5w.write_chunk(self.handles[key], j, d) for key, d in zip(self.fields(idx), data)]
        # The line is appended only after every chunk of the task reached the operating system.
        os.write(self.journal, (f"{idx} " + " ".join(f"{a}:{b}" for a, b in locs) + "\n").encode())
        self.done += 1

    def close(self) -> None:
        os.close(self.journal)


def read_journal(path: Path, writer: ChunkWriter) -> list[list[tuple[int, int]]]:
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


def replay(previous: Path, writer: ChunkWriter) -> None:
    """Copy the journalled chunks of an interrupted run (``previous/``) into the new file, in task order."""
    entries = read_journal(previous / "journal.txt", writer)
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


def attempt_dir(parts: Path) -> tuple[Path, Path | None]:
    """The folder of this run's output and journal, and the interrupted run's folder to replay (if any)."""
    current, previous = parts / "current", parts / "previous"
    if previous.exists():  # a replay was interrupted: its partial copy is discarded, the original kept
        shutil.rmtree(current, ignore_errors=True)
    elif current.exists():
        os.replace(current, previous)
    current.mkdir()
    return current, previous if previous.exists() else None
