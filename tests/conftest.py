"""Shared pytest set-up: quiet progress bars, deterministic RNG per test, a fixed small thread count."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("BAMKIT_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Tests that draw random numbers get the same draws every run (torchvision's RNG hygiene)."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # see pytest_configure; re-set in case a library changed it
    yield


def pytest_configure(config):
    import torch

    # Tiny test models run faster on one thread (thread start-up dominates); it also keeps parallel
    # test runs on a 2-core CI machine from oversubscribing.
    torch.set_num_threads(1)
