"""Progress bars with rate and ETA (tqdm), quiet when stderr is not a terminal unless asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def enabled() -> bool:
    """Bars show on a terminal; ``BAMKIT_PROGRESS=1`` forces them on, ``=0`` off (tests, CI logs)."""
    env = os.environ.get("BAMKIT_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false")
    return sys.stderr.isatty()


def bar(
    iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it", **kw: Any
):
    """A tqdm bar (rate + ETA) that respects :func:`enabled`."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled(),
        dynamic_ncols=True,
        mininterval=0.5,
        **kw,
    )
