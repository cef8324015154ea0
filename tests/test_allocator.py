"""bamkit.allocator: the glibc settings the CLI applies cut the page faults of repeated batch-sized
allocations (measured in fresh interpreters, with and without them), and a user's MALLOC_* settings win."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

# Ten "batches": 24 blocks of MiB allocated, written and freed together, as a batch's activations are.
ROUNDS = """
import resource, sys
import numpy as np
from bamkit.allocator import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "1" else False
mib = int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    blocks = [np.ones(mib << 17) for _ in range(24)]
    del blocks
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tuned: bool, env: dict[str, str] | None = None, mib: int = 8) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | (env or {})
    out = subprocess.run(
        [sys.executable, "-c", ROUNDS, "1" if tuned else "0", str(mib)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    return bool(int(out[0])), int(out[1])


def test_tuned_allocator_reuses_freed_batches_instead_of_refaulting_them():
    _, default = _faults(False)
    applied, tuned = _faults(True)
    assert applied
    pages_per_round = 24 * (8 << 20) // 4096  # 49,152 pages of 4 KiB
    # glibc's defaults hand freed batches back and fault them in again (here 123 k faults, 2.5 rounds' worth);
    # tuned, the freed blocks are reused (12 k)
    assert default > 1.5 * pages_per_round
    assert tuned < default / 4


def test_blocks_above_glibcs_largest_mmap_threshold_are_reused_too():
    """40 MiB blocks, the size of EfficientNet-Lite0's largest activations at 80 px and 64 images: above the
    32 MiB that glibc's mmap threshold can be raised to, so only serving them from the heap stops the refaults."""
    _, default = _faults(False, mib=40)
    _, tuned = _faults(True, mib=40)
    # here 128 k faults by default and with the 32 MiB threshold alike (huge pages make a fault 2 MiB); 13 k tuned
    assert default > 50_000
    assert tuned < default / 4


def test_user_malloc_settings_win():
    applied, _ = _faults(True, {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not applied
