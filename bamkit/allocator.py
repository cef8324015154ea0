"""glibc ``malloc`` settings for bamkit's long CPU tensor workloads (the CLI applies them at start).

By default glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to 32 MiB as
such blocks are freed) with a fresh ``mmap`` and returns it on ``free``, and trims the heap's free top beyond
128 KiB. Each batch of an attribution pass or a training step allocates and frees tens of megabytes of
activations and gradients, so the kernel maps and zero-fills the same pages again and again. Here every block
comes from the heap (no ``mmap`` for single blocks: at 80 px and 64 images, EfficientNet-Lite0's largest
activations are 39 MiB, above the 32 MiB that is the highest threshold glibc accepts) and the heap is trimmed
only above 2 GiB, so freed pages are reused (the effect on the demo is in docs/reproduction.md#performance-notes).
Memory stays bounded by the peak in use: freed blocks are reused, only not handed back between batches.

A user's own ``MALLOC_*`` environment settings win: nothing is changed when one of them is set.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
MMAP_MAX = 0  # blocks served by mmap at most at once: none, every block comes from the heap
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes: about 2 GiB
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def tune_allocator() -> bool:
    """Serve every block of this process from glibc's heap (no mmap) and trim the heap only above 2 GiB.

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
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_MAX, MMAP_MAX))
