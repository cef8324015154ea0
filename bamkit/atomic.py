"""Write outputs under a temporary name and rename them into place only when complete.

A reader never sees a half-written file; an interrupted stage leaves the temporary behind for resuming.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def tmp_path(path: str | Path) -> Path:
    """The temporary sibling used while ``path`` is being written (same folder, so rename is atomic)."""
    p = Path(path)
    return p.with_name(p.name + ".tmp")


def commit(tmp: str | Path, final: str | Path) -> None:
    """Flush-rename ``tmp`` onto ``final`` atomically (POSIX ``rename``)."""
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` if the block succeeds, delete it otherwise."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    commit(tmp, final)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write a binary file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
