"""`bamkit run` end to end on the tiny pipeline: sources → build → train → verify → δ → evaluate → report,
then the stage stamps: a re-run skips every stage, and changing one method re-runs only evaluate + report."""

from __future__ import annotations

import json

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


def test_tiny_pipeline_runs_then_skips_then_reruns_only_what_changed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(shipped("pipelines/tiny.yaml")), "--out", str(out)]) == 0
    first = _statuses(capsys.readouterr().out)
    assert first == {s: "ran" for s in STAGES}
    page = out / "report" / "index.html"
    assert page.is_file() and "data:image/png;base64," in page.read_text()
    summary = pd.read_csv(out / "results" / "summary.csv")
    assert {"mcs", "idr", "iir"} <= set(summary.metric)
    assert json.loads((out / "verify" / "verify.json").read_text())  # the verification table was written

    # Nothing changed: every stage is current.
    assert main(["run", str(shipped("pipelines/tiny.yaml")), "--out", str(out)]) == 0
    assert _statuses(capsys.readouterr().out) == {s: "skipped" for s in STAGES}

    # One method's parameter changes: only the evaluation and the report depend on it.
    suite = yaml.safe_load(shipped("evaluate/demo.yaml").read_text())
    for m in suite["methods"]:
        if m["name"] == "smoothgrad_sq":
            m["n_samples"] = 4
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    run_cfg = yaml.safe_load(shipped("pipelines/tiny.yaml").read_text())
    run_cfg["suite"] = str(tmp_path / "suite.yaml")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(run_cfg))
    assert main(["run", str(tmp_path / "tiny.yaml"), "--out", str(out)]) == 0
    third = _statuses(capsys.readouterr().out)
    assert third == {**{s: "skipped" for s in STAGES}, "evaluate": "ran", "report": "ran"}


def test_run_config_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsourcez: {}\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown key 'sourcez'" in err and "did you mean 'sources'" in err
