"""Statistics (trials, bootstrap, paired tests, Holm, ranking agreement, correlations), the metric registry and
``bamkit metrics``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import bamkit.metrics as M
from bamkit.cli import main
from bamkit.errors import ConfigError
from bamkit.metrics import stats as S


def test_trials_mean_std_and_degenerate_pools():
    rng = np.random.default_rng(0)
    v = rng.normal(2.0, 1.0, 1000)
    r = S.trials(v, n_trials=10, trial_size=100, seed=0)
    assert r.n == 1000 and r.trial_size == 100 and len(r.trial_means) == 10
    assert r.mean == pytest.approx(np.mean(r.trial_means)) and r.std == pytest.approx(
        np.std(r.trial_means, ddof=1)
    )
    assert r.std == pytest.approx(1 / math.sqrt(100), rel=0.5)  # std of a 100-mean
    assert r == S.trials(v, seed=0) and r != S.trials(v, seed=1)
    small = S.trials([1.0, 0.0, 1.0, float("nan")], trial_size=100)
    assert (
        small.trial_size == 3
        and small.n_dropped == 1
        and small.std == 0
        and small.mean == pytest.approx(2 / 3)
    )
    empty = S.trials([float("nan")])
    assert math.isnan(empty.mean) and empty.n == 0
    with pytest.raises(ConfigError):
        S.trials(v, n_trials=0)


def test_bootstrap_ci_covers_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(200):
        sample = rng.normal(5.0, 2.0, 40)
        ci = S.bootstrap_ci(sample, n_boot=500, seed=k)
        assert ci.low <= ci.value <= ci.high and ci.value == pytest.approx(sample.mean())
        hits += ci.low <= 5.0 <= ci.high
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_ci_for_a_proportion_and_median():
    v = np.array([1] * 30 + [0] * 70, dtype=float)
    ci = S.bootstrap_ci(v, n_boot=2000, seed=0)
    se = math.sqrt(0.3 * 0.7 / 100)
    assert ci.value == 0.3 and ci.low == pytest.approx(0.3 - 1.96 * se, abs=0.03)
    assert ci.high == pytest.approx(0.3 + 1.96 * se, abs=0.03)
    med = S.bootstrap_ci(np.arange(11.0), statistic="median", n_boot=200)
    assert med.value == 5.0
    with pytest.raises(ConfigError):
        S.bootstrap_ci(v, statistic="mode")


def test_holm_known_values():
    adj = S.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(S.holm([0.5, float("nan")])[1]) and S.holm([0.9, 0.8])[0] == 1.0


def test_paired_comparisons_wilcoxon_and_sign_vs_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 60)
    b = a - 0.05 + rng.normal(0, 0.02, 60)
    c = a + rng.normal(0, 0.05, 60)
    res = S.paired_comparisons({"a": a, "b": b, "c": c})
    ab = next(r for r in res if (r.a, r.b) == ("a", "b"))
    ref = stats.wilcoxon(a - b)
    assert ab.p == pytest.approx(ref.pvalue) and ab.statistic == pytest.approx(ref.statistic)
    assert ab.p_holm == pytest.approx(S.holm([r.p for r in res])[0]) and ab.better == "a"
    lower = S.paired_comparisons({"a": a, "b": b}, higher_is_better=False)
    assert lower[0].better == "b"
    d = np.array([1.0] * 8 + [-1.0] * 2 + [0.0] * 3)  # sign test: 8 of 10 non-zero positive
    sign = S.paired_comparisons({"x": d, "y": np.zeros(13)}, test="sign")[0]
    assert sign.statistic == 8 and sign.p == pytest.approx(2 * (45 + 10 + 1) / 1024)
    same = S.paired_comparisons({"x": a, "y": a.copy()})[0]
    assert same.p == 1.0 and same.better is None
    with pytest.raises(ConfigError):
        S.paired_comparisons({"x": a, "y": a[:5]})


def test_ranking_agreement_honours_direction():
    table = {
        "rcap": {"gag": 0.4, "sg": 0.1, "ig": 0.05},  # higher better: gag > sg > ig
        "dauc": {"gag": 0.10, "sg": 0.12, "ig": 0.20},  # lower better: same order
        "iauc": {"gag": 0.5, "sg": 0.6, "ig": 0.7},  # higher better: reversed order
        "kendall_noise": {"gag": 1.0, "sg": 2.0, "ig": 3.0},  # not a score: skipped
    }
    hib = {"rcap": True, "dauc": False, "iauc": True, "kendall_noise": None}
    res = {(r.metric_a, r.metric_b): r for r in S.ranking_agreement(table, hib)}
    assert set(res) == {("rcap", "dauc"), ("rcap", "iauc"), ("dauc", "iauc")}
    assert res[("rcap", "dauc")].tau == pytest.approx(1.0) and res[("rcap", "iauc")].tau == pytest.approx(
        -1.0
    )
    assert res[("rcap", "dauc")].n_methods == 3
    with pytest.raises(ConfigError):
        S.ranking_agreement(table, {"rcap": True})


def test_correlations_vs_scipy_and_degenerate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    assert S.pearson(x, y) == pytest.approx(tuple(stats.pearsonr(x, y)))
    assert S.spearman(x, y) == pytest.approx(tuple(stats.spearmanr(x, y)))
    assert all(math.isnan(v) for v in S.pearson([1, 2], [3, 4]))
    assert all(math.isnan(v) for v in S.pearson([1, 2, 3], [1, 1, 1]))
    y2 = y.copy()
    y2[0] = np.nan
    assert S.pearson(x, y2) == pytest.approx(tuple(stats.pearsonr(x[1:], y[1:])))


# --------------------------------------------------------------------------------------------- registry / CLI
DIRECTIONS = {  # docs/metrics.md#directions
    "mcs": True,
    "idr": True,
    "iir": True,
    "attribution_change": False,
    "rcap": True,
    "dauc": False,
    "iauc": True,
    "logcosh_dice": False,
    "sqrt_mae": False,
    "mae": False,
    "aupc": False,
    "autvc": False,
    "mutual_information": True,
    "kendall_noise": True,  # docs/metrics.md#directions: protocol 1, higher τ at a fixed ε = more robust
    "cosine_noise": True,
    "cosine_masking": None,
    "kendall_masking": None,
}


def test_registry_metadata_and_functions_resolve():
    for name, hib in DIRECTIONS.items():
        assert M.METRICS.get(name).higher_is_better is hib
    for name, cls in M.METRICS.items():
        assert callable(cls.function) and cls.name == name
        assert cls.saliency in {"bam", "abs_minmax", "signed", "raw_flat", None}
    assert M.METRICS.get("mcs").saliency == "bam" and M.METRICS.get("rcap").saliency == "abs_minmax"
    assert M.METRICS.get("rcap").function is M.rcap_details and M.METRICS.get("iir").function is M.iir_score


def test_cli_lists_metrics(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    for name in M.METRICS.names():
        assert name in out
    assert main(["metrics", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(M.METRICS.names())
    assert main(["metrics", "rcap"]) == 0 and "lower_bound" in capsys.readouterr().out
    assert main(["metrics", "rcp"]) == 2
    assert "did you mean 'rcap'" in capsys.readouterr().err
