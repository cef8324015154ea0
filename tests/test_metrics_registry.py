"""The metric registry is the production path: the evaluate stage computes every leaderboard number with the
functions the registry's entries hold. Wrap them all in the entries, run an evaluation, and every one of them
must have been called (and its results must be what lands in the tables)."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

import bamkit.attribution  # noqa: F401
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.metrics.registry import METRICS
from bamkit.testing.evaluate import planted_models, write_planted_file

SIZE = 16
# Every metric a suite can request (derived rows come with their parent metric).
REQUESTABLE = [n for n, c in METRICS.items() if c.derived_from is None]


def _name(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _wrap_entries(monkeypatch, calls: dict[str, int]) -> set[str]:
    """Replace ``function`` and ``per_pair`` in every entry by a counting wrapper; the names of all of them."""
    names = set()
    for _, cls in METRICS.items():
        for attr in ("function", "per_pair"):
            if attr not in cls.__dict__ or cls.__dict__[attr] is None:
                continue  # inherited: wrapped on the class that holds it
            original = getattr(cls, attr)
            name = _name(original)
            names.add(name)

            @functools.wraps(original)  # the entry's settings are read from its function's signature
            def wrapped(*args, _original=original, _name=name, **kwargs):
                calls[_name] = calls.get(_name, 0) + 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(cls, attr, staticmethod(wrapped))
    return names


def test_every_registered_function_computes_the_leaderboard(tmp_path, monkeypatch):
    calls: dict[str, int] = {}
    paths = _wrap_entries(monkeypatch, calls)
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

    monkeypatch.setattr(
        METRICS.get("idr"), "function", staticmethod(lambda a, b, correct: Score(0.25, 7, {}))
    )
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
