"""The metric registry is the production path: the evaluate stage computes every leaderboard number with the
functions the registry names, looked up at run time. Wrap them all, run an evaluation, and every one of them
must have been called (and its results must be what lands in the tables)."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

import bamkit.attribution  # noqa: F401
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.metrics.registry import METRICS
from bamkit.testing.evaluate import planted_models, write_planted_file

SIZE = 16
# Every metric a suite can request (derived rows come with their parent metric).
REQUESTABLE = [n for n, c in METRICS.items() if c.derived_from is None]


def _wrap(monkeypatch, path: str, calls: dict[str, int]) -> None:
    mod, _, attr = path.rpartition(".")
    module = importlib.import_module(mod)
    original = getattr(module, attr)

    def wrapped(*args, **kwargs):
        calls[path] = calls.get(path, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, attr, wrapped)


def test_every_registered_function_computes_the_leaderboard(tmp_path, monkeypatch):
    calls: dict[str, int] = {}
    paths = {p for _, c in METRICS.items() for p in (c.function, c.per_pair) if p}
    for p in paths:
        _wrap(monkeypatch, p, calls)
    data = write_planted_file(tmp_path / "planted.h5", n_pairs=20, size=SIZE)
    suite = suite_from_dict(
        {
            "name": "registry",
            "data": str(data),
            "methods": [
                {"name": "vanilla_gradient", "label": "VG"},
                {"name": "smoothgrad", "label": "SG", "n_samples": 2, "sigma": 0.5},
            ],
            "metrics": REQUESTABLE,
            "scenarios": {
                "rmcs": {"models": ["f_k0.1"]},
                "faithfulness": {"max_images": 3},
                "stability": {"max_images": 2, "epsilons": [0.2, 0.5], "ratios": [0.1, 0.5]},
            },
            "samples": {"n_trials": 2, "trial_size": 4, "n_boot": 50},
        }
    )
    out = evaluate(suite, tmp_path / "res", loaded_models=planted_models(SIZE))
    assert sorted(p for p in paths if p not in calls) == []
    summary = pd.read_csv(out / "summary.csv")
    # every requested metric (relative MCS as its ρ rows) and every derived row has rows in the leaderboard
    assert set(REQUESTABLE) - {"rmcs"} <= set(summary.metric)
    derived = {n for n, c in METRICS.items() if c.derived_from is not None}
    assert derived <= set(summary.metric)


def test_a_wrapped_score_function_is_what_the_leaderboard_reports(tmp_path, monkeypatch):
    """Not just called: the value of the registered aggregate is the table's value (planted: IDR's score
    function answers 0.25 and the leaderboard says 0.25)."""
    from bamkit.metrics.functional import Score

    cls = METRICS.get("idr")
    mod, _, attr = cls.function.rpartition(".")
    monkeypatch.setattr(importlib.import_module(mod), attr, lambda a, b, correct: Score(0.25, 7, {}))
    data = write_planted_file(tmp_path / "planted.h5", n_pairs=20, size=SIZE)
    suite = suite_from_dict(
        {
            "name": "planted-score",
            "data": str(data),
            "methods": [{"name": "vanilla_gradient", "label": "VG"}],
            "metrics": ["idr"],
            "samples": {"n_trials": 2, "trial_size": 4, "n_boot": 50},
        }
    )
    out = evaluate(suite, tmp_path / "res", loaded_models=planted_models(SIZE))
    row = pd.read_csv(out / "summary.csv").set_index(["metric", "method"]).loc[("idr", "VG")]
    assert row["value"] == pytest.approx(0.25) and row["n"] == 7
