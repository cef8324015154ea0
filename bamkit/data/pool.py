"""An ordered, bounded process pool: results come back in task order, at most ``2 * workers`` in flight.

Workers never inherit an open HDF5 handle or a thread lock of this process: they are forked from a clean
``forkserver`` process (POSIX), which imports the ``preload`` modules once, so each further worker costs a fork
instead of a fresh interpreter importing numpy, h5py and PIL; where there is
no fork server (Windows) they are spawned. With ``workers <= 1`` the same functions run in this process, so
results do not depend on the worker count.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The modules a worker needs, for every pool bamkit opens: a process starts its fork server once (with the first
# pool's preload list), so the sources' and the build's pools share one list.
PRELOAD = (
    "bamkit.data.workers",
    "bamkit.sources.coco",
    "bamkit.sources.decode",
    "bamkit.sources.synth_coco",
    "bamkit.sources.synth_render",
    "PIL.JpegImagePlugin",
)


class OrderedPool:
    """``workers`` processes (or this one) that map functions over tasks in order with bounded memory."""

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        preload: tuple[str, ...] = PRELOAD,
    ) -> None:
        self.workers = max(1, int(workers))
        self._ex: ProcessPoolExecutor | None = None
        if self.workers > 1:
            ctx = _context(preload)
            self._ex = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=initializer, initargs=initargs
            )
        elif initializer is not None:
            initializer(*initargs)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(task)`` for each task, in order; tasks are pulled lazily, ``2 * workers`` at a time."""
        if self._ex is None:
            for t in tasks:
                yield fn(t)
            return
        pending: collections.deque[Future] = collections.deque()
        it = iter(tasks)
        for t in it:
            pending.append(self._ex.submit(fn, t))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            result = pending.popleft().result()
            for t in it:
                pending.append(self._ex.submit(fn, t))
                break
            yield result

    def close(self) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None


def _context(preload: tuple[str, ...]) -> multiprocessing.context.BaseContext:
    """The fork server where the platform has one (preloading ``preload``), else ``spawn``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if preload:
        # Takes effect when this process starts its fork server (once); later pools reuse that server.
        ctx.set_forkserver_preload(list(preload))
    return ctx


@contextlib.contextmanager
def ordered_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    preload: tuple[str, ...] = PRELOAD,
) -> Iterator[OrderedPool]:
    """An :class:`OrderedPool` that is shut down when the block ends."""
    pool = OrderedPool(workers, initializer, initargs, preload)
    try:
        yield pool
    finally:
        pool.close()
