"""Multi-process evaluation on Lightning Fabric (2 CPU processes, gloo) equals one process."""

from __future__ import annotations

import pandas as pd
import pytest

import bamkit.attribution  # noqa: F401
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.testing.evaluate import planted_models, write_planted_file


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    data = write_planted_file(tmp_path / "p.h5", n_pairs=12, size=16)
    base = {
        "name": "d",
        "data": str(data),
        "methods": [{"name": "smoothgrad", "label": "SG", "n_samples": 3}, {"name": "random"}],
        "metrics": ["mcs", "idr", "rcap"],
        "scenarios": {"faithfulness": {"max_images": 4}},
        "samples": {"n_trials": 2, "trial_size": 4, "n_boot": 50},
    }
    models = planted_models(16, roles=("f_o", "f_s"))
    one = evaluate(suite_from_dict(base), tmp_path / "one", loaded_models=models)
    two = evaluate(
        suite_from_dict({**base, "execution": {"devices": 2, "accelerator": "cpu", "strategy": "ddp_spawn"}}),
        tmp_path / "two",
        loaded_models=models,
    )
    assert sorted(p.name for p in (two / "shards").iterdir()) == ["shard0of2", "shard1of2"]
    pd.testing.assert_frame_equal(pd.read_csv(one / "per_image.csv"), pd.read_csv(two / "per_image.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(one / "summary.csv"), pd.read_csv(two / "summary.csv"))
