"""Progress for every long stage: a tqdm bar (rate + ETA) on a terminal, plain lines in a log.

``BAMKIT_PROGRESS`` chooses: unset — a bar when stderr is a terminal, log lines otherwise; ``bar`` (or ``1``) —
the bar; ``log`` — the lines; ``0`` (or ``off``) — nothing (the tests). A log line is printed to stderr at
least every :data:`LOG_SECONDS` seconds and at every :data:`LOG_FRACTION` of the total (at most one per
:data:`LOG_MIN_GAP` seconds), and one when the task ends (none for a task shorter than that), e.g.
``train f_o: 120/264 batch (45%), 3.1 batch/s, 46 s left``, so a run redirected to a file (a batch job, CI)
shows that it lives and how long it will take.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

LOG_SECONDS = 30.0
LOG_FRACTION = 0.10
LOG_MIN_GAP = (
    5.0  # a 10 % step prints only this long after the previous line (short tasks: just the last one)
)


def mode() -> str:
    """``"bar"``, ``"log"`` or ``"off"`` from ``BAMKIT_PROGRESS`` and whether stderr is a terminal."""
    env = os.environ.get("BAMKIT_PROGRESS")
    if env is None:
        return "bar" if sys.stderr.isatty() else "log"
    env = env.strip().lower()
    if env in ("0", "", "false", "off", "no"):
        return "off"
    return "log" if env == "log" else "bar"


def enabled() -> bool:
    """Whether interactive bars are on (a terminal, or ``BAMKIT_PROGRESS=bar``)."""
    return mode() == "bar"


class LogProgress:
    """A tqdm-like counter that prints a plain line every :data:`LOG_SECONDS` or :data:`LOG_FRACTION`.

    Supports what bamkit uses of tqdm: iteration, ``update(n)``, ``close()`` and the context manager.
    """

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc or "progress", unit
        self.n = 0
        self.start = self.last_time = time.monotonic()
        self.last_n = 0
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        step = (self.total or 0) * LOG_FRACTION
        since = now - self.last_time
        if since >= LOG_SECONDS or (step >= 1 and self.n - self.last_n >= step and since >= LOG_MIN_GAP):
            self._line(now)

    def _line(self, now: float, done: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        if self.total:
            pct = f" ({100.0 * self.n / self.total:.0f}%)"
            left = (self.total - self.n) / rate if rate > 0 and not done else 0.0
            tail = f", {elapsed:.0f} s" if done else f", {left:.0f} s left"
            text = f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {rate:.3g} {self.unit}/s{tail}"
        else:
            text = f"{self.desc}: {self.n} {self.unit}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s"
        print(text, file=sys.stderr, flush=True)
        self.last_time, self.last_n = now, self.n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = time.monotonic()
        printed = self.last_time > self.start
        # the final count, unless the last line said it; a task that ended within LOG_MIN_GAP says nothing
        if self.n and self.n != self.last_n and (printed or now - self.start >= LOG_MIN_GAP):
            self._line(now, done=True)


def bar(
    iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it", **kw: Any
):
    """A progress counter over ``iterable`` (or updated by hand up to ``total``) in the :func:`mode` chosen."""
    m = mode()
    if m == "log":
        return LogProgress(iterable, total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=m == "off",
        dynamic_ncols=True,
        mininterval=0.5,
        **kw,
    )
