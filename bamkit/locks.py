"""One writer per output: a lock file beside (or inside) every output a stage writes.

The holder keeps an exclusive ``flock`` on ``<output>.lock`` for as long as it writes and records its PID, host,
start time and command in it. A second writer fails at once with a one-line message naming the holder — two
writers would interleave their parts and leave a file that looks valid but is not. The kernel drops the flock when
its holder dies (``kill -9`` included), so a lock left by a dead process is taken over, with a message, and the
interrupted work is resumed as usual.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bamkit.errors import DataError

log = logging.getLogger(__name__)


def lock_path(output: str | Path, folder: bool = False) -> Path:
    """Where the lock of ``output`` lives: ``<output>.lock`` for a file, ``<output>/.lock`` for a folder."""
    p = Path(output)
    return p / ".lock" if folder else p.with_name(p.name + ".lock")


def _holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}


@contextlib.contextmanager
def output_lock(output: str | Path, what: str = "output", folder: bool = False) -> Iterator[Path]:
    """Hold the lock of ``output`` (a file, or a folder with ``folder=True``) for the duration of the block.

    Raises:
        DataError: another live process holds it (the message names it and what to do).
    """
    lock = lock_path(output, folder)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = _holder(fd)
            os.close(fd)
            since = time.strftime("%H:%M:%S", time.localtime(h["started"])) if "started" in h else "?"
            raise DataError(
                f"{what} {str(output)!r} is being written by process {h.get('pid', '?')} on {h.get('host', '?')} "
                f"(since {since}: {' '.join(h.get('argv', [])) or '?'}); wait for it to finish or stop it — two "
                "writers would corrupt it"
            ) from None
        try:  # the file we locked must still be the lock (a previous holder may have removed it meanwhile)
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    previous = _holder(fd)
    if previous.get("pid") and previous.get("pid") != os.getpid():
        log.warning(
            "%s: taking over the lock of process %s (%s), which is no longer running; resuming its work",
            output,
            previous.get("pid"),
            " ".join(previous.get("argv", [])),
        )
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode("utf-8"))
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # while still holding it: a waiter that opened this inode re-checks and retries
        os.close(fd)
