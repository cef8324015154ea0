"""``bamkit score``: a researcher's own methods scored beside a finished run (the tiny pipeline's), from a copy
of the run folder in another place; the plug-in contract checked with one line per violation; cached maps that
follow the code; captum classes from the command line and from YAML."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bamkit.cli import main
from bamkit.paths import shipped

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ["value", "n", "trial_mean", "trial_std", "ci_low", "ci_high", "p_value"]

GSQ = """import torch


def gradient_squared(model, inputs, target):
    x = inputs.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return g**2
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny pipeline run, moved after it finished (so nothing may rely on where it was made)."""
    made = tmp_path_factory.mktemp("made") / "run"
    assert main(["run", str(shipped("pipelines/tiny.yaml")), "--out", str(made)]) == 0
    moved = tmp_path_factory.mktemp("moved") / "run"
    shutil.move(str(made), str(moved))
    return moved


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A working folder that is neither the checkout nor the run's."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _summary(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "summary.csv")


def _pairs(folder: Path) -> dict[str, np.ndarray]:
    """method -> every per-pair value of the results (defined or not, included or not), in table order."""
    d = pd.read_csv(folder / "per_pair.csv")
    return {m: g["value"].to_numpy(float) for m, g in d.groupby("method")}


def test_a_moved_run_is_scored_from_another_folder(tiny_run, elsewhere, capsys):
    (elsewhere / "gsq.py").write_text(GSQ)
    assert main(["score", str(tiny_run), "GSQ=./gsq.py:gradient_squared"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = Path(lines[-1])
    assert out == tiny_run / "scores" / "GSQ" and lines[-2].startswith("report: ")
    new, old = _summary(out), _summary(tiny_run / "results")
    assert {"mcs", "idr", "iir", "rcap"} <= set(new.loc[new.method == "GSQ", "metric"])
    # the run's rows are the run's: every number the same (only the ranks move where GSQ places above)
    base = new[new.method != "GSQ"].reset_index(drop=True)
    cols = [c for c in NUMBERS if c in old]
    pd.testing.assert_frame_equal(base[["metric", "method", *cols]], old[["metric", "method", *cols]])
    page = (out / "report" / "index.html").read_text()
    assert page.index("Your methods") < page.index("The paper&#x27;s findings") and "GSQ: placement" in page
    assert not (tiny_run / "results" / "scores").exists()  # the run's own results untouched
    s = json.loads((out / "summary.json").read_text())
    assert s["scored"]["methods"] == ["GSQ"] and s["suite"]["data"] == "../../data/dataset.h5"


def test_an_edited_method_is_computed_again_and_an_unchanged_one_is_not(tiny_run, elsewhere):
    calls = elsewhere / "calls.txt"
    (elsewhere / "counted.py").write_text(
        GSQ + f"\n\ndef counted(model, inputs, target):\n    open({str(calls)!r}, 'a').write('x')\n"
        "    return gradient_squared(model, inputs, target)\n"
    )
    (elsewhere / "edited.py").write_text(GSQ)
    argv = [
        "score",
        str(tiny_run),
        "E=./edited.py:gradient_squared",
        "C=./counted.py:counted",
        "--out",
        "res",
    ]
    assert main(argv) == 0
    first, n_calls = _pairs(elsewhere / "res"), len(calls.read_text())
    assert n_calls > 0
    (elsewhere / "edited.py").write_text(GSQ.replace("return g**2", "return -g"))  # now the negative part
    assert main(argv) == 0
    second = _pairs(elsewhere / "res")
    assert len(calls.read_text()) == n_calls  # C's code did not change: its cached maps were read
    assert np.array_equal(second["C"], first["C"], equal_nan=True)
    assert not np.allclose(second["E"], first["E"], equal_nan=True)  # E's maps were computed again
    assert main([*argv, "--recompute", "C"]) == 0 and len(calls.read_text()) > n_calls


def test_captum_from_the_command_line_and_from_yaml(tiny_run, elsewhere):
    """captum's Saliency (|∂ logit / ∂ x| by default), built around each model, gives exactly the rows of the
    same quantity written by hand; Occlusion with its arguments as a YAML entry runs."""
    (elsewhere / "absgrad.py").write_text(GSQ.replace("return g**2", "return g.abs()"))
    occ = "{name: captum.attr:Occlusion, label: OCC, sliding_window_shapes: [3, 8, 8], strides: [3, 8, 8]}"
    argv = ["score", str(tiny_run), "SAL=captum.attr:Saliency", "ABS=./absgrad.py:gradient_squared", occ]
    assert main([*argv, "--out", "res"]) == 0
    pairs = pd.read_csv(elsewhere / "res" / "per_pair.csv")
    sal, ab = (pairs[pairs.method == m].reset_index(drop=True) for m in ("SAL", "ABS"))
    np.testing.assert_allclose(
        sal["value"].to_numpy(float), ab["value"].to_numpy(float), rtol=1e-6, atol=1e-7
    )
    assert (pairs.method == "OCC").any()


BAD = {
    "small_map": ("return torch.rand(inputs.shape[0], 4, 4)", "returned shape (", "upsample: bilinear"),
    "a_list": ("return [inputs]", "returned list", "expected ("),
    "ints": ("return torch.zeros(inputs.shape[0], 3, inputs.shape[2], inputs.shape[3], dtype=torch.long)",
             "torch.int64 tensor", "expected ("),
    "one_row": ("return inputs[:1]", "returned shape (1,", "one row per input image"),
    "channels_last": ("return inputs.permute(0, 2, 3, 1)", "channels last", "out.permute(0, 3, 1, 2)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_contract_violation_is_one_line_naming_the_method_and_the_shape(
    tiny_run, elsewhere, case, capsys
):
    body, *fragments = BAD[case]
    (elsewhere / "bad.py").write_text(f"import torch\n\n\ndef {case}(model, inputs, target):\n    {body}\n")
    assert main(["score", str(tiny_run), f"./bad.py:{case}", "--out", "res"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and case in err and all(f in err for f in fragments), err


def test_a_method_with_nan_maps_is_told_why_it_has_no_rank(tiny_run, elsewhere, capsys):
    """Maps with NaN on some images: those images are excluded and the method is not ranked, and the command says
    so under its table (not only the report), naming the method and the count."""
    body = GSQ.replace("return g**2", "g = g.clone()\n    g[::2] = float('nan')\n    return g")
    (elsewhere / "nan.py").write_text(body)
    assert main(["score", str(tiny_run), "HALF=./nan.py:gradient_squared", "--out", "res"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    warn = [ln for ln in lines if ln.startswith("warning: HALF: ")]
    assert len(warn) == 1 and "NaN/Inf" in warn[0] and "not ranked" in warn[0], lines
    assert lines[-2].startswith("report: ")
    summary = _summary(elsewhere / "res")
    assert summary.loc[summary.method == "HALF", "rank"].isna().all()
    # counted once per map, though stability has a row per level of each image
    per = pd.read_csv(elsewhere / "res" / "per_image.csv")
    maps = per[(per.method == "HALF") & per.nonfinite].drop_duplicates(["scenario", "model", "set", "image"])
    assert (per[(per.method == "HALF") & per.nonfinite].scenario == "stability").sum() > (
        maps.scenario == "stability"
    ).sum()
    counts = json.loads((elsewhere / "res" / "summary.json").read_text())["counts"]["nonfinite_maps"]
    assert counts["HALF"] == len(maps)


def test_score_changes_how_maps_are_computed_not_what_is_scored(tiny_run, elsewhere, capsys):
    (elsewhere / "gsq.py").write_text(GSQ)
    argv = ["score", str(tiny_run), "./gsq.py:gradient_squared", "--out", "res"]
    assert main([*argv, "--set", "scenarios.mcs.max_images=3"]) == 2
    assert "only execution.* settings may change" in capsys.readouterr().err
    assert main([*argv, "--set", "execution.batch_size=3"]) == 0


def test_a_low_resolution_map_is_scored_with_upsample(tiny_run, elsewhere):
    (elsewhere / "coarse.py").write_text(
        "import torch.nn.functional as F\n\n\ndef coarse(model, inputs, target):\n"
        "    return F.avg_pool2d(inputs.abs().sum(1, keepdim=True), 4)\n"
    )
    assert (
        main(["score", str(tiny_run), "{name: ./coarse.py:coarse, upsample: bilinear}", "--out", "res"]) == 0
    )
    s = json.loads((elsewhere / "res" / "summary.json").read_text())
    entry = next(m for m in s["suite"]["methods"] if m["label"] == "coarse")  # the function's own name
    assert entry["upsample"] == "bilinear"  # recorded with the results


@pytest.mark.parametrize(
    "method, fragments",
    [
        ("vanila_gradient", ["--method vanila_gradient", "did you mean 'vanilla_gradient'"]),
        ("no_such_pkg.maps:fn", ["--method no_such_pkg.maps:fn", "PYTHONPATH", "./path/to/maps.py:fn"]),
    ],
)
def test_a_bad_method_flag_is_named_not_the_suite_file(tiny_run, elsewhere, method, fragments, capsys):
    results = tiny_run / "results"
    argv = ["evaluate", str(shipped("evaluate/demo.yaml")), "--data", str(tiny_run / "data" / "dataset.h5"),
            "--models", str(tiny_run / "models"), "--out", str(elsewhere / "r"), "--method", method]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(f in err for f in fragments), err
    assert results.is_dir()


def test_tcav_scores_are_cached_like_maps(tiny_run, elsewhere, monkeypatch):
    """The second evaluation of the same TCAV (same models, parameters, image sets) reads its scores."""
    from bamkit.attribution import tcav as tcav_mod
    from bamkit.evaluate.cache import AttributionCache
    from bamkit.evaluate.datasets import DataSets
    from bamkit.evaluate.execution import exec_options
    from bamkit.evaluate.runner import all_roles, load_models
    from bamkit.evaluate.scenarios.concept import run_concept
    from bamkit.evaluate.score import run_suite_of

    suite = run_suite_of(tiny_run / "results")
    models = load_models(suite, suite.models, all_roles(suite))
    calls = []
    real = tcav_mod.tcav
    monkeypatch.setattr(tcav_mod, "tcav", lambda *a, **k: calls.append(1) or real(*a, **k))
    outs = []
    for _ in range(2):
        with DataSets(suite.data, (suite.patch_data,)) as bam, AttributionCache(elsewhere / "cache") as cache:
            outs.append(run_concept(suite, bam, models, exec_options(suite.execution), cache))
        if len(outs) == 1:
            first = len(calls)
    assert first > 0 and len(calls) == first  # the second evaluation computed nothing
    assert json.dumps(outs[1]["rows"], sort_keys=True) == json.dumps(outs[0]["rows"], sort_keys=True)


def test_tcav_reads_each_image_set_once_for_all_models(tiny_run, monkeypatch):
    """Every model scores the same target, concept and random images: their pixels are read from the file once
    per evaluation, not once per model (the reads had been 8 of TCAV's 62 s on the demo)."""
    from bamkit.attribution import tcav as tcav_mod
    from bamkit.data.h5 import SetView
    from bamkit.evaluate.datasets import DataSets
    from bamkit.evaluate.execution import exec_options
    from bamkit.evaluate.runner import all_roles, load_models
    from bamkit.evaluate.scenarios.concept import concept_sets, run_concept
    from bamkit.evaluate.score import run_suite_of

    suite = run_suite_of(tiny_run / "results")
    models = load_models(suite, suite.models, all_roles(suite))
    reads, scored = [], []
    real_read, real_tcav = SetView.read, tcav_mod.tcav
    monkeypatch.setattr(
        SetView,
        "read",
        lambda self, f, idx=None: (f == "images" and reads.append(self.name)) or real_read(self, f, idx),
    )
    monkeypatch.setattr(tcav_mod, "tcav", lambda *a, **k: scored.append(1) or real_tcav(*a, **k))
    with DataSets(suite.data, (suite.patch_data,)) as bam:
        sets = concept_sets(suite, bam)
        run_concept(suite, bam, models, exec_options(suite.execution), None)
    assert len(scored) >= 3  # f_o, f_s and the commonality models
    assert len(reads) == 2 + len(sets["randoms"])  # target, concept and each random set: once each


def test_recompute_names_a_method_being_computed(tiny_run, elsewhere, capsys):
    """--recompute of a method that is not computed here (a run's own method, a typo) is one line naming it and
    the labels that are, from bamkit score and bamkit evaluate alike, before anything is written."""
    (elsewhere / "gsq.py").write_text(GSQ)
    argv = ["score", str(tiny_run), "GSQ=./gsq.py:gradient_squared", "--recompute", "VG", "--out", "res"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--recompute VG" in err and "the labels: GSQ" in err, err
    assert not (elsewhere / "res").exists()
    argv = ["evaluate", str(shipped("evaluate/demo.yaml")), "--data", str(tiny_run / "data" / "dataset.h5"),
            "--models", str(tiny_run / "models"), "--out", "r", "--recompute", "NOPE"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--recompute NOPE" in err and "VG, GxI" in err, err
    assert not (elsewhere / "r").exists()


def test_tcav_of_a_run_that_recorded_no_once_results_is_read_from_its_cache(
    tiny_run, tmp_path, elsewhere, monkeypatch
):
    """A run whose shard records hold no once-per-evaluation results (written before they were kept there):
    score gets TCAV's through the concept scenario's own run_once from the run's cache, computing nothing."""
    from bamkit.attribution import tcav as tcav_mod
    from bamkit.evaluate.score import run_suite_of

    run = tmp_path / "older"
    shutil.copytree(tiny_run, run)
    for meta in (run / "results" / "shards").glob("*/meta.json"):
        record = json.loads(meta.read_text())
        assert record.pop("once", None)  # the run did record TCAV's scores: the test removes them
        meta.write_text(json.dumps(record))
    calls = []
    real = tcav_mod.tcav
    monkeypatch.setattr(tcav_mod, "tcav", lambda *a, **k: calls.append(1) or real(*a, **k))
    (elsewhere / "gsq.py").write_text(GSQ)
    assert main(["score", str(run), "GSQ=./gsq.py:gradient_squared", "--out", "res"]) == 0
    assert calls == []
    concept = [m.label for m in run_suite_of(run / "results").concept_methods()]
    new, old = _summary(elsewhere / "res"), _summary(run / "results")
    cols = ["metric", "method", *[c for c in NUMBERS if c in old]]
    rows_new, rows_old = (d[d.method.isin(concept)][cols].reset_index(drop=True) for d in (new, old))
    assert len(rows_old) > 0
    pd.testing.assert_frame_equal(rows_new, rows_old)


@pytest.mark.slow
def test_the_example_walk_runs_on_a_finished_run(tiny_run, elsewhere):
    script = ROOT / "examples" / "score_your_method" / "run.sh"
    r = subprocess.run(
        [str(script), str(tiny_run)], capture_output=True, text=True, cwd=elsewhere, timeout=900
    )
    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip().splitlines()[-1])
    assert out.is_dir() and (out / "report" / "index.html").is_file()
    assert "gradient_squared" in set(pd.read_csv(out / "summary.csv").method)


def test_bamkit_run_takes_methods_too(tiny_run, tmp_path, elsewhere):
    """``bamkit run --method``: the evaluate stage scores it beside the suite's (a copy of the run, so the other
    tests' run stays as it was)."""
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    (elsewhere / "gsq.py").write_text(GSQ)
    argv = ["run", str(shipped("pipelines/tiny.yaml")), "--out", str(run), "--only", "evaluate"]
    assert main([*argv, "--method", "GSQ=./gsq.py:gradient_squared"]) == 0
    assert "GSQ" in set(_summary(run / "results").method)
