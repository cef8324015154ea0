"""Reference values that mean chance: what an input-independent or a random map scores on IIR and App. C
(against Monte Carlo, and against a random map on planted data), the random map drawn afresh for every input,
TCAV's random baseline with its own interval, and bootstrap intervals for relative MCS's ρ that cover the
planted ρ at about their nominal rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import bamkit.attribution  # noqa: F401
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.evaluate.scenarios.rmcs import rho_intervals
from bamkit.metrics.chance import attribution_change_chance, iir_chance
from bamkit.testing.evaluate import planted_models, write_planted_file


@pytest.mark.parametrize("n", [1, 4, 16, 29, 30, 200])
def test_chance_values_match_monte_carlo(n):
    """Independent uniform maps, BAM's scaling (divide by the 99th percentile ≈ 0.99, clip at 1), the mean over
    an n-pixel region: the analytic IIR and App. C values against 40,000 simulated pairs."""
    rng = np.random.default_rng(n)
    g1 = np.minimum(rng.random((40_000, n)) / 0.99, 1).mean(1)
    g2 = np.minimum(rng.random((40_000, n)) / 0.99, 1).mean(1)
    assert iir_chance([n], t=0.1) == pytest.approx(np.mean(np.abs(g2 - g1) < 0.1 * g1), abs=0.01)
    if n > 1:  # one pixel: E[1/g] diverges, no mean to compare
        assert attribution_change_chance([n]) == pytest.approx(np.mean(np.abs(g2 - g1) / g1), rel=0.03)


def test_random_iir_on_planted_data_is_its_chance_value(tmp_path):
    """The random map, drawn afresh for x and for x + δ, scores the analytic chance IIR for the regions of the
    pairs scored, which the results record beside the metric; a constant map would score 1."""
    size = 32
    data = write_planted_file(tmp_path / "p.h5", n_pairs=400, size=size, patch_shift=0)
    suite = suite_from_dict({
        "name": "chance", "data": str(data), "methods": [{"name": "random", "label": "Random"}],
        "metrics": ["iir", "attribution_change"], "scenarios": {"iir": {"split": "all"}},
        "samples": {"n_trials": 2, "trial_size": 10, "n_boot": 50},
    })  # fmt: skip
    out = evaluate(suite, tmp_path / "res", loaded_models=planted_models(size))
    s = json.loads((out / "summary.json").read_text())
    chance = s["iir_chance"]
    summary = pd.read_csv(out / "summary.csv").set_index("metric")
    assert chance["pairs"] == summary.loc["iir", "n"] > 150
    assert chance["constant"] == {"iir": 1.0, "attribution_change": 0.0}
    assert summary.loc["iir", "value"] == pytest.approx(chance["independent_random"]["iir"], abs=0.06)
    assert summary.loc["attribution_change", "value"] == pytest.approx(
        chance["independent_random"]["attribution_change"], rel=0.15
    )
    page_rows = pd.read_csv(out / "per_image.csv")
    x = page_rows[page_rows.set == "bamboo_forest"].set_index("image")["region_px"]
    assert (x > 0).all() and x.max() > 30  # the regions mix the exact and the normal-approximation sizes


def test_rho_intervals_cover_the_planted_rho():
    """Per-image MCS series whose means correlate with the accuracy drop at a planted ρ: the 95 % bootstrap
    interval over images covers it in at least 85 of 100 simulated studies, and narrows with more images."""
    drop = {k: v for k, v in zip([0.1 * i for i in range(1, 11)], [19, 21, 15, 20, 18, 14, -1, 0, -1, 2])}
    ks = sorted(drop)[:-1]
    x = np.array([drop[k] for k in ks])
    z = (x - x.mean()) / x.std()
    other = np.array([1.0, -1, 1, -1, 1, -1, 1, -1, 0.5])
    other = other - other.mean() - (other - other.mean()) @ z / (z @ z) * z  # orthogonal to the drop
    other /= other.std()
    rho0 = 0.6
    means = 0.05 * (
        rho0 * z + math.sqrt(1 - rho0**2) * other
    )  # the series' population means: ρ = rho0 (9 points)
    assert np.corrcoef(means, x)[0, 1] == pytest.approx(rho0)
    widths = {}
    for n in (100, 400):
        covered = []
        for seed in range(100):
            rng = np.random.default_rng(seed)
            d = {k: means[i] + 0.05 * rng.standard_normal(n) for i, k in enumerate(ks)}
            ok = {k: np.ones(n, bool) for k in ks}
            ci = rho_intervals(d, ok, drop, n_boot=400, alpha=0.05, seed=seed)["rmcs_rho9"]
            covered.append(ci[0] <= rho0 <= ci[1])
            widths.setdefault(n, []).append(ci[1] - ci[0])
        assert np.mean(covered) >= 0.85, (n, np.mean(covered))
    assert np.mean(widths[400]) < np.mean(widths[100])


def test_tcav_random_baseline_has_its_own_interval():
    """TCAV's ``mcs_random`` row: the interval of the random counterpart's repeats, not of the concept's."""
    from bamkit.attribution.tcav import TCAVResult
    from bamkit.evaluate.scenarios.concept import _row

    def result(concept, null):
        return TCAVResult(("l",), {"l": concept}, {"l": null}, {"l": 0.0}, {"l": [1.0] * 3}, ("l",),
                          float(np.mean(concept)), False, 0.01, tuple(concept), float(np.mean(null)))  # fmt: skip

    fo, fs = result([0.9, 0.8, 0.85], [0.5, 0.52, 0.48]), result([0.2, 0.3, 0.25], [0.5, 0.5, 0.5])
    null = _row("mcs_random", "TCAV", fo.random_score - fs.random_score, fo.random_repeat_scores,
                fs.random_repeat_scores, 10)  # fmt: skip
    assert null["value"] == pytest.approx(0.0)
    assert null["ci_low"] < 0 < null["ci_high"] and null["ci_high"] - null["ci_low"] < 0.2
    assert TCAVResult.from_dict(json.loads(json.dumps(fo.to_dict()))) == fo  # the cache's round trip
