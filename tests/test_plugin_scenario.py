"""A scenario and pair metrics added from one file under tests/ (no edit of bamkit/): they run, land in
summary.csv, summary.json and the report, with values checked against closed forms on planted models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bamkit.data.h5 import BamFile
from bamkit.evaluate import evaluate, load_suite
from bamkit.evaluate.scenarios import SCENARIOS
from bamkit.metrics.registry import METRICS
from bamkit.report import write_report
from bamkit.testing.evaluate import planted_models, write_planted_file

PLUGIN = Path(__file__).parent / "plugins" / "background_contrast.py"
SIZE = 16


@pytest.fixture
def registries():
    """Leave the global registries as they were: the plug-in registers for this test only."""
    saved = {reg: dict(reg._items) for reg in (SCENARIOS, METRICS)}
    modules = set(sys.modules)
    yield
    for reg, items in saved.items():
        reg._items.clear()
        reg._items.update(items)
    for name in set(sys.modules) - modules:  # the plug-in's module: registered again when imported again
        if name.startswith("bamkit_user_"):
            del sys.modules[name]


def _suite_file(tmp_path: Path, data: Path) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "name": "plugin",
                "data": str(data),
                "plugins": [str(PLUGIN)],
                "methods": [{"name": "vanilla_gradient", "label": "VG"}],
                "metrics": ["mcs", {"name": "mcs_hit_rate", "margin": 0.5}, "background_mcs"],
                "scenarios": {"background": {"split": "val"}},
                "samples": {"n_trials": 2, "trial_size": 4, "n_boot": 50},
            }
        )
    )
    return p


def test_a_plugin_scenario_and_metrics_run_end_to_end(tmp_path, registries):
    data = write_planted_file(tmp_path / "planted.h5", n_pairs=20, size=SIZE)
    suite = load_suite(_suite_file(tmp_path, data))
    assert "background" in suite.scenarios and suite.scenario_enabled("background")
    out = evaluate(suite, tmp_path / "res", loaded_models=planted_models(SIZE))

    # The planted linear models' input gradients are fixed maps: f_o weighs the central square, f_s the rest,
    # so after BAM's scaling f_s's map is 1 outside the central 8 x 8 square and f_o's 1 inside it. Over the
    # background region (all but an m-pixel object inside the square): G_bg(f_s) = 192 / (256 - m),
    # G_bg(f_o) = (64 - m) / (256 - m), and their difference (128 + m) / (256 - m).
    with BamFile(data) as bf:
        v = bf["obj_scene"]
        split, label = v.read("split", None), v.read("object_label", None)
        area = v.read("masks", None).reshape(len(split), -1).sum(1)
    keep = (split == 1) & (label == 0)  # validation rows both models get right
    expected = float(np.mean((128 + area[keep]) / (256 - area[keep])))

    summary = pd.read_csv(out / "summary.csv").set_index(["metric", "method"])
    row = summary.loc[("background_mcs", "VG")]
    assert row["value"] == pytest.approx(expected, rel=1e-6) and row["n"] == keep.sum()
    # the metric declared into the built-in MCS scenario: g_c(f_o) = 1 > g_c(f_s) + 0.5 = 0.5 on every pair
    hit = summary.loc[("mcs_hit_rate", "VG")]
    assert hit["value"] == 1.0 and hit["n"] == keep.sum()
    assert summary.loc[("mcs", "VG"), "value"] == pytest.approx(1.0)

    s = json.loads((out / "summary.json").read_text())
    assert [sc["name"] for sc in s["scenarios"]] == ["mcs", "background"]
    assert s["metric_info"]["mcs_hit_rate"]["title"] == "MCS hit rate (margin 0.5)"
    pairs = pd.read_csv(out / "per_pair.csv")
    assert set(pairs.loc[pairs.scenario == "background", "metric"]) == {"background_mcs"}

    page = write_report(out).read_text()
    assert "Background MCS" in page and "MCS hit rate (margin 0.5)" in page
    assert (
        "Background contrast (a plug-in scenario)" in page and "region = the scene around the object" in page
    )


def test_a_metric_setting_of_a_plugin_is_checked_like_a_builtin(tmp_path, registries):
    from bamkit.errors import ConfigError

    data = write_planted_file(tmp_path / "planted.h5", n_pairs=20, size=SIZE)
    p = _suite_file(tmp_path, data)
    raw = yaml.safe_load(p.read_text())
    raw["metrics"][1] = {"name": "mcs_hit_rate", "margn": 0.5}
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="has no parameter 'margn'; known: margin"):
        load_suite(p)
