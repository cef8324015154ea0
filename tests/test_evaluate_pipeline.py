"""From the tiny synthetic sources to the report with the real stages (build, smoke training, δ, evaluate,
report). Slow on a shared 2-core machine (training 13 models), so marked slow."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bamkit.paths import shipped


@pytest.mark.slow
def test_tiny_pipeline_to_report(tmp_path):
    from bamkit.data.build import build_dataset
    from bamkit.data.recipe import load_recipe
    from bamkit.delta.craft import craft_file
    from bamkit.evaluate import run_suite
    from bamkit.report import write_report
    from bamkit.sources.synth import write_sources
    from bamkit.train.runner import train_config

    write_sources(tmp_path / "src", scale="tiny", seed=0)
    data = build_dataset(
        load_recipe(shipped("data_recipes/tiny.yaml"), root=tmp_path / "src"), tmp_path / "d.h5"
    )
    train_config(shipped("train/smoke.yaml"), data=data, out=tmp_path / "models", smoke=True)
    craft_file(data, tmp_path / "models" / "f_empty.ckpt", out=tmp_path / "delta.h5", steps=5)
    suite = tmp_path / "suite.yaml"
    suite.write_text(shipped("evaluate/demo.yaml").read_text() + "\nsmoke: true\n")
    res = run_suite(
        suite,
        data=data,
        models=tmp_path / "models",
        out=tmp_path / "res",
        patch_data=tmp_path / "delta.h5",
        methods=["vargrad"],
    )
    s = pd.read_csv(res / "summary.csv")
    assert {"mcs", "idr", "iir", "rcap"} <= set(s.metric) and "vargrad" in set(s.method)
    assert not json.loads((res / "summary.json").read_text())["skipped"]
    page = write_report(res)
    assert page.is_file() and (page.parent / "figures" / "grid_mcs.png").is_file()
