"""The evaluate stage end to end on planted ground truth (bamkit.testing.evaluate): known metric values,
correctness filtering, cache resume, sharded == unsharded, user methods, and the results files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

import bamkit.attribution  # noqa: F401
import bamkit.metrics as M
from bamkit.errors import DataError
from bamkit.evaluate import evaluate, merge_shards, suite_from_dict
from bamkit.metrics.bam import keyed_random_regions
from bamkit.metrics.registry import METRICS
from bamkit.testing.evaluate import planted_models, write_planted_file

SIZE = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_planted_file(tmp_path_factory.mktemp("data") / "planted.h5", n_pairs=20, size=SIZE)


@pytest.fixture(scope="module")
def models():
    return planted_models(SIZE)


def _suite(data, **over):
    d = {
        "name": "t",
        "data": str(data),
        "methods": [
            {"name": "vanilla_gradient", "label": "VG"},
            {"name": "smoothgrad", "label": "SG", "n_samples": 3, "sigma": 0.5},
            {"name": "random", "label": "Random"},
        ],
        "metrics": ["mcs", "rmcs", "idr", "iir", "attribution_change", "rcap", "dice", "mae"],
        "scenarios": {"rmcs": {"models": ["f_k0.1"]}, "faithfulness": {"max_images": 8}},
        "samples": {"n_trials": 3, "trial_size": 5, "n_boot": 200},
    }
    d.update(over)
    return suite_from_dict(d)


def _value(summary, metric, method):
    r = summary[(summary.metric == metric) & (summary.method == method)]
    assert len(r) == 1, (metric, method)
    return float(r["value"].iloc[0])


@pytest.fixture(scope="module")
def run(data, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    evaluate(_suite(data), out, loaded_models=models)
    return out


def test_planted_models_give_the_closed_form_scores(run):
    s = pd.read_csv(run / "summary.csv")
    # f_o's gradient is 1 exactly on the central square holding every object, f_s's is 0 there
    assert _value(s, "mcs", "VG") == pytest.approx(1.0)
    assert _value(s, "mcs", "SG") == pytest.approx(1.0)
    # f_s's gradient does not depend on the input: equal g_c in both images, strict inequality -> IDR 0
    assert _value(s, "idr", "VG") == 0.0
    # the 20 pairs have 12 validation pairs, of which every 5th row (label 1) is misclassified
    per_pair = pd.read_csv(run / "per_pair.csv")
    mcs_vg = per_pair[(per_pair.metric == "mcs") & (per_pair.method == "VG")]
    assert len(mcs_vg) == 15 and mcs_vg.included.sum() == 12  # 15 val rows, 3 with label 1
    assert not mcs_vg[~mcs_vg.included]["pair"].isin(np.arange(4, 20, 5)).eq(False).any()
    # a uniform random map puts about as much mass on the object as outside: MCS near 0, IDR near 1/2
    assert abs(_value(s, "mcs", "Random")) < 0.15
    assert 0.2 < _value(s, "idr", "Random") < 0.8
    # ranks: VG and SG tie first on MCS; Random is a reference (input-independent): shown, never ranked
    r = s[s.metric == "mcs"].set_index("method")
    assert r.loc["VG", "rank"] == r.loc["SG", "rank"] == 1 and np.isnan(r.loc["Random", "rank"])
    assert bool(r.loc["Random", "reference"]) and not r.loc[["VG", "SG"], "reference"].any()


def test_pair_values_match_the_metrics_package(run):
    """The tidy per-image table, re-aggregated with bamkit.metrics' own functions, gives the summary."""
    pi = pd.read_csv(run / "per_image.csv")
    s = pd.read_csv(run / "summary.csv")
    for method in ("VG", "SG", "Random"):
        a = pi[(pi.scenario == "mcs") & (pi.model == "f_o") & (pi.method == method)].sort_values("pair")
        b = pi[(pi.scenario == "mcs") & (pi.model == "f_s") & (pi.method == method)].sort_values("pair")
        t = lambda c: torch.tensor(np.asarray(c))  # noqa: E731
        want = M.mcs(t(a.g_c), t(b.g_c), t(a.correct.to_numpy() & b.correct.to_numpy()))
        assert _value(s, "mcs", method) == pytest.approx(want, abs=1e-9)
        w = pi[(pi.scenario == "idr") & (pi.set == "obj_scene") & (pi.method == method)].sort_values("pair")
        wo = pi[(pi.scenario == "idr") & (pi.set == "scene_only") & (pi.method == method)].sort_values("pair")
        want = M.idr(t(w.g_c), t(wo.g_c), t(w.correct.to_numpy() & wo.correct.to_numpy()))
        assert _value(s, "idr", method) == pytest.approx(want, abs=1e-9)


def test_faithfulness_scores_equal_direct_metric_calls(run, data, models):
    """RCAP in the table equals bamkit.metrics.rcap on the cached abs_minmax map of the same image."""
    from bamkit.data.h5 import BamFile
    from bamkit.evaluate.cache import AttributionCache
    from bamkit.evaluate.datasets import DataSets
    from bamkit.evaluate.execution import cache_suffix, exec_options
    from bamkit.evaluate.methods import MethodSpec

    pi = pd.read_csv(run / "per_image.csv")
    f = pi[(pi.scenario == "faithfulness") & (pi.method == "VG")].sort_values("image")
    rows = f.image.to_numpy()
    model, meta = models["f_o"]
    with BamFile(data) as bf, DataSets(data) as ds, AttributionCache(run / "cache", "reader") as c:
        x = meta.preprocess(torch.from_numpy(bf["obj_scene"].read("images", rows)))
        e = c.read(
            meta.checkpoint_hash,
            ds.token("obj_scene"),
            MethodSpec("VG", "vanilla_gradient").key + cache_suffix(exec_options(_suite(data).execution)),
            "abs_minmax",
            rows,
        )
    want = M.rcap(model, x, torch.from_numpy(e.maps), torch.from_numpy(e.target))
    np.testing.assert_allclose(f.rcap.to_numpy(), want.double().numpy(), atol=1e-6)


def test_iir_is_one_for_an_unchanged_patch(data, models, tmp_path):
    # f_empty played by the centre model, so g_c(x) > 0; the planted patch set equals bamboo_forest
    import dataclasses

    s = _suite(data, metrics=["iir", "attribution_change"])
    model, meta = models["f_o"]
    meta = dataclasses.replace(meta, name="f_empty", label_field="scene_label")
    out = evaluate(s, tmp_path, loaded_models={"f_empty": (model, meta)})
    summ = pd.read_csv(out / "summary.csv")
    assert _value(summ, "iir", "VG") == 1.0 and _value(summ, "attribution_change", "VG") == 0.0


def test_resume_computes_only_new_methods(data, models, tmp_path):
    s1 = _suite(data, methods=[{"name": "vanilla_gradient", "label": "VG"}], metrics=["mcs"])
    evaluate(s1, tmp_path, loaded_models=models)

    def done(path):
        with h5py.File(path, "r") as f:
            out = {}
            f.visititems(
                lambda n, o: out.__setitem__(n, int(o.attrs["n_done"])) if "n_done" in o.attrs else None
            )
        return out

    before = done(tmp_path / "cache" / "main.h5")
    s2 = _suite(
        data,
        methods=[{"name": "vanilla_gradient", "label": "VG"}, {"name": "gradient_x_input", "label": "GxI"}],
        metrics=["mcs"],
    )
    evaluate(s2, tmp_path, loaded_models=models)
    after = done(tmp_path / "cache" / "main.h5")
    assert {k: after[k] for k in before} == before  # VG rows not recomputed or duplicated
    assert len(after) == 2 * len(before)  # GxI added for the same (model, set, reducer) groups
    assert set(pd.read_csv(tmp_path / "summary.csv").method) == {"VG", "GxI"}


def test_sharded_equals_unsharded(run, data, models, tmp_path):
    s = _suite(data)
    for i in range(3):
        evaluate(s, tmp_path, shard=(i, 3), loaded_models=models)
    assert (tmp_path / "summary.csv").is_file()  # the last shard merged
    a = pd.read_csv(run / "per_image.csv")
    b = pd.read_csv(tmp_path / "per_image.csv")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(run / "summary.csv"), pd.read_csv(tmp_path / "summary.csv"))
    # shards are disjoint and cover everything
    parts = [pd.read_csv(tmp_path / "shards" / f"shard{i}of3" / "per_image.csv") for i in range(3)]
    assert sum(len(p) for p in parts) == len(a)
    keys = [set(zip(p.scenario, p.set, p.model, p.method, p.image)) for p in parts]
    assert not (keys[0] & keys[1]) and not (keys[1] & keys[2])


def test_a_partial_shard_set_is_not_merged(data, models, tmp_path):
    s = _suite(data, metrics=["mcs"], methods=["vanilla_gradient"])
    evaluate(s, tmp_path, shard=(0, 2), loaded_models=models)
    assert not (tmp_path / "summary.csv").exists()
    evaluate(s, tmp_path, shard=(1, 2), loaded_models=models)
    merge_shards(s, tmp_path, 2)
    assert (tmp_path / "summary.json").is_file()


def test_user_callable_method_joins_the_leaderboard(data, models, tmp_path, monkeypatch):
    """``--method module:callable``: a function f(model, inputs, target) is scored like a built-in."""
    import sys
    import types

    mod = types.ModuleType("user_maps_for_test")

    def center_map(model, inputs, target):  # attributes exactly the central square: the planted truth
        m = torch.zeros_like(inputs[:, :1])
        q = inputs.shape[-1] // 4
        m[..., q:-q, q:-q] = 1
        return m

    mod.center_map = center_map
    monkeypatch.setitem(sys.modules, "user_maps_for_test", mod)
    s = _suite(
        data,
        methods=[{"name": "random", "label": "Random"}, "user_maps_for_test:center_map"],
        metrics=["mcs", "idr"],
    )
    evaluate(s, tmp_path, loaded_models=models)
    summ = pd.read_csv(tmp_path / "summary.csv")
    # the map ignores the model: g_c equal for f_o and f_s -> MCS 0 exactly
    assert _value(summ, "mcs", "center_map") == 0.0  # labelled with the function's own name
    j = json.loads((tmp_path / "summary.json").read_text())
    assert "center_map" in j["methods"]


def test_random_regions_depend_only_on_the_pair_key():
    masks = np.zeros((4, 10, 10), bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 5:9, 2:4] = True
    masks[2, 0:5, 0:5] = True
    masks[3, 7:9, 7:9] = True
    pool = np.arange(4)
    read = lambda r: masks[r]  # noqa: E731
    full = keyed_random_regions(read, pool, pool, pool, (10, 10), 0, "mcs")
    part = keyed_random_regions(read, pool[[3, 1]], pool, pool, (10, 10), 0, "mcs")
    np.testing.assert_array_equal(full[[3, 1]], part)
    areas = sorted(int(m.sum()) for m in masks)
    for i, m in enumerate(full):  # another image's mask, moved: same area as some other mask
        assert int(m.sum()) in areas and not np.array_equal(m, masks[i])


def test_accuracy_drop_is_read_from_the_verification_files_real_serialisation(tmp_path):
    """RMCS reads verify's own files: a VerifyResult saved by the verify stage, read back by the evaluate stage.
    k_series holds fractions; RMCS uses percentage points like the paper's Fig. 2."""
    from bamkit.evaluate.merge import verification
    from bamkit.verify import Thresholds, VerifyResult, load_result

    res = VerifyResult("d.h5", "models", Thresholds())
    res.k_series = [
        {"k": 0.1, "model": "f_k0.1", "n": 12, "acc_with": 0.9, "acc_without": 0.5, "drop": 0.4},
        {"k": 1.0, "model": "f_k1.0", "n": 12, "acc_with": 0.9, "acc_without": 0.95, "drop": -0.05},
    ]
    res.save(tmp_path / "verify.json")
    back = load_result(tmp_path / "verify.json")
    assert back.acc_drop() == {0.1: pytest.approx(40.0), 1.0: pytest.approx(-5.0)}
    assert back.to_dict() == json.loads((tmp_path / "verify.json").read_text())
    suite = suite_from_dict({"methods": ["vanilla_gradient"], "verify": str(tmp_path / "verify.json")})
    (tmp_path / "out").mkdir()
    assert verification(suite, tmp_path / "out").acc_drop() == back.acc_drop()
    missing = suite_from_dict({"methods": ["vanilla_gradient"], "verify": str(tmp_path / "nope.json")})
    with pytest.raises(DataError, match="nope.json"):
        verification(missing, tmp_path / "out")


def test_cli_evaluate_reports_a_missing_data_file_in_one_line(tmp_path, capsys):
    import yaml

    from bamkit.cli import main

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "methods": ["vanilla_gradient"], "metrics": ["mcs"]}))
    rc = main(["evaluate", str(p), "--data", str(tmp_path / "missing.h5"), "--models", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("bamkit evaluate: error:") and "missing.h5" in err and "\n" not in err


def test_stale_shards_of_another_suite_are_not_merged(data, models, tmp_path):
    from bamkit.errors import DataError

    a = _suite(data, metrics=["mcs"], methods=["vanilla_gradient"])
    b = _suite(data, metrics=["mcs"], methods=["gradient_x_input"])
    evaluate(a, tmp_path, shard=(0, 2), loaded_models=models)
    evaluate(b, tmp_path, shard=(1, 2), loaded_models=models)
    assert not (tmp_path / "summary.csv").exists()
    with pytest.raises(DataError, match="not every shard"):
        merge_shards(b, tmp_path, 2)


def test_iir_and_app_c_count_only_pairs_whose_delta_passed(tmp_path, models):
    """BAM §4.4: a δ that fails the functional test (flagged passed=False, kept in the file) is excluded from
    IIR and App. C; the leaderboard says how many pairs were left out."""
    full = write_planted_file(tmp_path / "all.h5", n_pairs=20, size=SIZE)
    flagged = write_planted_file(tmp_path / "flag.h5", n_pairs=20, size=SIZE, delta_failed=(5, 8))
    # the random map: g_c(x) > 0 on every image, so App. C's ratio is defined for every correct pair
    suite = {"methods": [{"name": "random", "label": "R"}], "metrics": ["iir", "attribution_change"]}
    a = evaluate(_suite(full, **suite), tmp_path / "a", loaded_models=models)
    b = evaluate(_suite(flagged, **suite), tmp_path / "b", loaded_models=models)
    sa = pd.read_csv(a / "summary.csv").set_index(["metric", "method"])
    sb = pd.read_csv(b / "summary.csv").set_index(["metric", "method"])
    pairs = pd.read_csv(b / "per_pair.csv")
    # rows 5 and 8 of bamboo_forest_patch are pairs 10 and 16 (every 2nd pair); both correctly classified
    iir = pairs[pairs.metric == "iir"].set_index("pair")
    assert not iir.loc[[10, 16], "included"].any()
    for metric in ("iir", "attribution_change"):
        assert sa.loc[(metric, "R"), "n"] == 8  # 10 pairs, 2 misclassified
        assert sb.loc[(metric, "R"), "n"] == 8 - 2
        assert sb.loc[(metric, "R"), "n_delta_failed"] == 2
    assert "n_delta_failed" not in sa.columns or sa["n_delta_failed"].fillna(0).eq(0).all()


def test_random_maps_are_independent_across_models_and_reproducible(run, data, models, tmp_path):
    """The random reference draws its own map per (model, image): f_o's and f_s's maps differ, so its MCS has a
    real spread around 0 (it was exactly 0 with CI [0, 0]); the same seed gives the same maps again."""
    pi = pd.read_csv(run / "per_image.csv")
    r = pi[(pi.scenario == "mcs") & (pi.method == "Random")]
    g_o = r[r.model == "f_o"].sort_values("pair")["g_c"].to_numpy()
    g_s = r[r.model == "f_s"].sort_values("pair")["g_c"].to_numpy()
    assert not np.allclose(g_o, g_s)
    s = pd.read_csv(run / "summary.csv").set_index(["metric", "method"])
    assert s.loc[("mcs", "Random"), "ci_high"] > s.loc[("mcs", "Random"), "ci_low"]
    again = evaluate(_suite(data), tmp_path / "again", loaded_models=models)
    pd.testing.assert_frame_equal(pd.read_csv(run / "per_image.csv"), pd.read_csv(again / "per_image.csv"))


def _user_module(monkeypatch, name: str, **fns):
    import sys
    import types

    mod = types.ModuleType(name)
    for k, f in fns.items():
        setattr(mod, k, f)
    monkeypatch.setitem(sys.modules, name, mod)


def _center(inputs):
    m = torch.zeros_like(inputs[:, :1])
    q = inputs.shape[-1] // 4
    m[..., q:-q, q:-q] = 1
    return m


def test_nonfinite_maps_are_excluded_counted_and_never_ranked(data, models, tmp_path, monkeypatch):
    """A method returning NaN/Inf for some images: those images leave every score (counted in n_nonfinite),
    the method is not ranked, and the other images score as with a clean copy of the same map."""

    def spoiled(model, inputs, target):  # the planted truth, with one Inf pixel in images of odd mean
        m = _center(inputs)
        bad = inputs.flatten(1).sum(1).long() % 2 == 1
        m[bad, 0, 0, 0] = float("inf")
        return m

    _user_module(
        monkeypatch, "user_nan_maps", clean=lambda model, inputs, target: _center(inputs), spoiled=spoiled
    )
    s = _suite(
        data,
        methods=[{"name": "vanilla_gradient", "label": "VG"}, "user_nan_maps:clean", "user_nan_maps:spoiled"],
        metrics=["mcs", "idr", "rcap"],
    )
    evaluate(s, tmp_path, loaded_models=models)
    summ = pd.read_csv(tmp_path / "summary.csv")
    per = pd.read_csv(tmp_path / "per_image.csv")
    sp = summ[summ.method == "spoiled"]
    bad = per[(per.method == "spoiled") & per.nonfinite]
    assert len(bad) > 0 and bad["g_c"].isna().all()
    for _, r in sp.iterrows():
        assert np.isnan(r["rank"]), r["metric"]
        assert r["n_nonfinite"] == ((bad.scenario == METRICS.get(r["metric"]).scenario).sum())
    assert (sp["n_nonfinite"] > 0).all()
    vg = summ[(summ.method == "VG") & summ.higher_is_better.notna()]
    assert vg["rank"].notna().all() and (vg["n_nonfinite"] == 0).all()
    # the remaining images score exactly as the clean map does on them
    clean = per[(per.method == "clean") & (per.scenario == "mcs")].set_index(["model", "image"])
    good = per[(per.method == "spoiled") & (per.scenario == "mcs") & ~per.nonfinite]
    good = good.set_index(["model", "image"])
    assert np.allclose(good["g_c"], clean.loc[good.index, "g_c"])
    j = json.loads((tmp_path / "summary.json").read_text())
    assert j["counts"]["nonfinite_maps"]["spoiled"] == int(per[per.method == "spoiled"].nonfinite.sum())


def test_a_user_method_that_raises_is_named_with_its_scenario_and_rows(data, models, tmp_path, monkeypatch):
    def boom(model, inputs, target):
        raise ValueError("kaput")

    _user_module(monkeypatch, "user_boom", boom=boom)
    s = _suite(data, methods=[{"name": "vanilla_gradient", "label": "VG"}, "user_boom:boom"], metrics=["mcs"])
    with pytest.raises(DataError, match=r"method 'boom' failed in scenario 'mcs' \(model f_o, set "
                       r"obj_scene, rows \d+-\d+\): ValueError: kaput"):  # fmt: skip
        evaluate(s, tmp_path, loaded_models=models)


def test_off_fp32_runs_record_their_fidelity_and_cache_their_maps_apart(data, models, tmp_path):
    """bf16 maps are compared with fp32 ones on the first batch (Spearman per method, in summary.json), and
    cached under their own key: a later fp32 run into the same folder computes exact maps, never reads them."""
    methods = [
        {"name": "vanilla_gradient", "label": "VG"},
        {"name": "smoothgrad", "label": "SG", "n_samples": 3},
    ]
    fast = _suite(data, methods=methods, metrics=["mcs"], execution={"precision": "bf16"})
    evaluate(fast, tmp_path, loaded_models=models)
    run = json.loads((tmp_path / "summary.json").read_text())["execution"]
    assert run["precision"] == "bf16" and run["device"] == "cpu"
    rho = run["fidelity"]["spearman"]
    assert set(rho) == {"VG", "SG"} and all(0.5 < v <= 1.0 for v in rho.values()), rho
    exact = _suite(data, methods=methods, metrics=["mcs"], execution={"precision": "fp32"})
    evaluate(exact, tmp_path, loaded_models=models)
    run = json.loads((tmp_path / "summary.json").read_text())["execution"]
    assert run["precision"] == "fp32" and run["fidelity"] is None
    # fp32 with BatchNorm folded: recorded with its fidelity, cached apart again
    evaluate(
        _suite(data, methods=methods, metrics=["mcs"], execution={"fold_bn": True}),
        tmp_path,
        loaded_models=models,
    )
    run = json.loads((tmp_path / "summary.json").read_text())["execution"]
    assert (
        run["precision"] == "fp32"
        and run["fold_bn"] is True
        and set(run["fidelity"]["spearman"]) == {"VG", "SG"}
    )
    keys = []
    with h5py.File(tmp_path / "cache" / "main.h5", "r") as f:
        f.visit(keys.append)
    methods_cached = {k.split("/")[2] for k in keys if k.count("/") == 3}
    assert any(m.endswith("@bf16") for m in methods_cached) and any("@" not in m for m in methods_cached)
    assert any(m.endswith("@fp32-bn") for m in methods_cached)


@pytest.mark.parametrize("execution", [{}, {"fold_bn": True}, {"precision": "bf16"}])
def test_recompute_computes_the_maps_again_on_and_off_the_exact_path(
    data, models, tmp_path, monkeypatch, execution
):
    """``--recompute LABEL`` forgets the maps of that method also where they are cached under an off-exact key
    (bf16, folded), not only the exact ones."""
    from bamkit.evaluate import runner

    calls = []
    real = runner._attribute
    monkeypatch.setattr(runner, "_attribute", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = _suite(
        data, methods=[{"name": "vanilla_gradient", "label": "VG"}], metrics=["mcs"], execution=execution
    )
    evaluate(s, tmp_path, loaded_models=models)
    first = len(calls)
    evaluate(s, tmp_path, loaded_models=models)
    assert first > 0 and len(calls) == first  # read from the cache
    evaluate(s, tmp_path, loaded_models=models, recompute=("VG",))
    assert len(calls) == 2 * first  # every map computed again


def test_models_whose_keys_share_a_prefix_never_share_maps(data, models, tmp_path):
    """Models handed in with keys of their own that agree in their first 16 characters (as a benchmark's
    'bench-resnet18-f_o' / 'bench-resnet18-f_s' did) get their own maps: f_o's and f_s's g_c differ, and equal
    those of the same models under sha256-like keys."""
    import dataclasses

    s = _suite(data, methods=[{"name": "vanilla_gradient", "label": "VG"}], metrics=["mcs"])
    named = {
        r: (m, dataclasses.replace(meta, checkpoint_hash=f"a-common-prefix-of-16-chars-{r}"))
        for r, (m, meta) in models.items()
    }
    pi = pd.read_csv(evaluate(s, tmp_path / "named", loaded_models=named) / "per_image.csv")
    ref = pd.read_csv(evaluate(s, tmp_path / "ref", loaded_models=models) / "per_image.csv")
    g = {m: pi[pi.model == m].sort_values("image").g_c.to_numpy() for m in ("f_o", "f_s")}
    assert not np.allclose(g["f_o"], g["f_s"])
    for m in ("f_o", "f_s"):
        np.testing.assert_array_equal(g[m], ref[ref.model == m].sort_values("image").g_c.to_numpy())
    assert pi.groupby("model").model_hash.first().nunique() == 2


def test_cache_size_is_known_before_the_first_map_and_bounded_by_the_disk(data, models, tmp_path):
    """summary.json["cache_bytes"] (computed from the legs before any attribution) equals the payload the cache
    really holds for a one-scenario suite (float16 maps + the per-row fields, summed over every group of the HDF5
    file); a need beyond the disk's free space is one DataError naming the folder, before any work."""
    from bamkit.evaluate.cache import ROW_BYTES, check_room

    s = _suite(data, metrics=["mcs"])
    out = evaluate(s, tmp_path / "r", loaded_models=models)
    payload = 0

    def add(name, obj):
        nonlocal payload
        if isinstance(obj, h5py.Dataset) and name.endswith("/map"):
            payload += obj.size * obj.dtype.itemsize + len(obj) * ROW_BYTES

    with h5py.File(out / "cache" / "main.h5", "r") as f:
        f.visititems(add)
    assert payload > 0
    assert json.loads((out / "summary.json").read_text())["cache_bytes"] == payload
    import shutil

    free = shutil.disk_usage(tmp_path).free
    check_room(tmp_path, need=free // 2, have=0)  # fits: nothing raised
    with pytest.raises(DataError, match=r"needs about .* GB more .* free; free space"):
        check_room(tmp_path, need=free + 10**12, have=0)
