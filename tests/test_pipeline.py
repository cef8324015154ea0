"""`bamkit run` end to end on the tiny pipeline: sources → build → train → verify → δ → evaluate → report,
then the stage stamps: a re-run skips every stage, and changing one method re-runs only evaluate + report."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import yaml

from bamkit.cli import main
from bamkit.paths import shipped
from bamkit.pipeline.run import STAGES


def _statuses(out: str) -> dict[str, str]:
    lines = [ln for ln in out.splitlines() if ln.startswith("[bamkit run] ")]
    status = {}
    for ln in lines:
        stage, what = ln[len("[bamkit run] ") :].split(": ", 1)
        if what.startswith("current"):
            status[stage] = "skipped"
        elif what.startswith("done"):
            status[stage] = "ran"
    return status


def _config_root(tmp_path):
    """A copy of the shipped config folders, so that the test may edit any of them."""
    root = tmp_path / "configs"
    for folder in ("data_recipes", "train", "evaluate", "pipelines"):
        shutil.copytree(shipped(folder), root / folder)
    return root


def test_tiny_pipeline_runs_then_skips_then_reruns_only_what_changed(tmp_path, capsys):
    """Stage keys hash the resolved configuration each stage reads: editing the suite re-runs evaluate and
    report only; editing a *base* training file (which no run config names directly) re-trains."""
    root = _config_root(tmp_path)
    cfg = str(root / "pipelines" / "tiny.yaml")
    out = tmp_path / "run"
    assert main(["run", cfg, "--out", str(out)]) == 0
    first = _statuses(capsys.readouterr().out)
    assert first == {s: "ran" for s in STAGES}
    page = out / "report" / "index.html"
    assert page.is_file() and "data:image/png;base64," in page.read_text()
    summary = pd.read_csv(out / "results" / "summary.csv")
    assert {"mcs", "idr", "iir"} <= set(summary.metric)
    assert json.loads((out / "verify" / "verify.json").read_text())  # the verification table was written

    # Nothing changed: every stage is current.
    assert main(["run", cfg, "--out", str(out)]) == 0
    assert _statuses(capsys.readouterr().out) == {s: "skipped" for s in STAGES}

    # One method's parameter changes: only the evaluation and the report depend on it.
    suite_file = root / "evaluate" / "demo.yaml"
    suite = yaml.safe_load(suite_file.read_text())
    for m in suite["methods"]:
        if m["name"] == "smoothgrad_sq":
            m["n_samples"] = 4
    suite_file.write_text(yaml.safe_dump(suite))
    assert main(["run", cfg, "--out", str(out)]) == 0
    third = _statuses(capsys.readouterr().out)
    assert third == {**{s: "skipped" for s in STAGES}, "evaluate": "ran", "report": "ran"}

    # The shared base of every model changes (train/_base.yaml, reached through smoke.yaml -> f_o.yaml ->
    # base): training and everything downstream of it re-runs; sources and build do not.
    base_file = root / "train" / "_base.yaml"
    base = yaml.safe_load(base_file.read_text())
    base["optim"]["weight_decay"] = 0.001
    base_file.write_text(yaml.safe_dump(base))
    assert main(["run", cfg, "--out", str(out)]) == 0
    fourth = _statuses(capsys.readouterr().out)
    assert fourth == {"sources": "skipped", "build": "skipped", **{s: "ran" for s in STAGES[2:]}}

    # The run seed is read: another seed is another run, from the sources on.
    assert main(["run", cfg, "--out", str(out), "--seed", "1", "--only", "sources"]) == 0
    assert _statuses(capsys.readouterr().out)["sources"] == "ran"


def test_relative_paths_resolve_against_the_run_config_and_missing_ones_are_named_together(tmp_path, capsys):
    root = _config_root(tmp_path)
    cfg = yaml.safe_load((root / "pipelines" / "tiny.yaml").read_text())
    cfg["recipe"], cfg["suite"] = "nope/recipe.yaml", "../evaluate/missing.yaml"
    bad = root / "pipelines" / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "2 path(s) do not exist" in err
    assert "recipe: 'nope/recipe.yaml'" in err and "suite: '../evaluate/missing.yaml'" in err
    assert str(root / "pipelines" / "nope" / "recipe.yaml") in err  # looked for beside the config, only there


def test_run_config_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsourcez: {}\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown key 'sourcez'" in err and "did you mean 'sources'" in err
