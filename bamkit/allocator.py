"""glibc ``malloc`` settings for bamkit's long CPU tensor workloads (the CLI applies them at start).

By default glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to 32 MiB as
such blocks are freed) with a fresh ``mmap`` and returns it on ``free``, and trims the heap's free top beyond
128 KiB. Each batch of an attribution pass allocates and frees tens of megabytes of activations and gradients,
so the kernel maps and zero-fills the same pages again and again. With the mmap threshold fixed at glibc's
maximum (32 MiB) and trimming only above 2 GiB those pages are reused instead (the effect on the demo is in
docs/reproduction.md#performance-notes). Memory stays bounded by the peak in use: freed blocks are reused, only
not handed back between batches.

A user's own ``MALLOC_*`` environment settings win: nothing is changed when one of them is set.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes: about 2 GiB
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold at 32 MiB and its trim threshold at 2 GiB for this process.

    Returns:
        True when both were set; False on other platforms or C libraries, or when the environment sets one.
    """
    if not sys.platform.startswith("linux") or any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
