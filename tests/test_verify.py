"""BAM Figure 2 verification: hand-computed pieces, independent re-measurement, files and exit codes."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from bamkit.cli import main
from bamkit.data.h5 import BamFile
from bamkit.metrics.stats import spearman
from bamkit.models import load_classifier
from bamkit.paths import shipped
from bamkit.published import BAM_K_ACCURACY
from bamkit.testing.train import TINY_TRAIN_OVERRIDES, built_tiny_dataset
from bamkit.train.runner import train_config
from bamkit.verify import Thresholds, confidence_rise, verify_models

TINY = list(TINY_TRAIN_OVERRIDES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return built_tiny_dataset(tmp_path_factory.getbasetemp() / "bamkit_tiny")


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    for name in ("f_o", "f_s", "f_k0.1", "f_k0.5", "f_k1.0"):
        train_config(shipped(f"train/{name}.yaml"), data=tiny, out=out, smoke=True, overrides=TINY)
    return out


def test_confidence_rise_counts_only_pairs_correct_on_both():
    full = (np.array([1, 2, 3, 4, 5]), np.array([1, 1, 1, 0, 1], bool), np.array([0.5, 0.6, 0.7, 0.9, 0.4]))
    # Removed-CF rows in another order; pair 5 is missing, pair 4 was wrong on the full input.
    removed = (np.array([3, 2, 1, 4]), np.array([1, 1, 0, 1], bool), np.array([0.9, 0.5, 0.99, 0.95]))
    share, n = confidence_rise(full, removed)
    assert n == 2 and share == 0.5  # pair 2: 0.6 -> 0.5 (down), pair 3: 0.7 -> 0.9 (up)
    assert math.isnan(confidence_rise(full, (np.array([9]), np.array([True]), np.array([1.0])))[0])


def test_spearman_on_hand_cases_and_published_series():
    assert spearman([0.1, 0.2, 0.3], [3.0, 2.0, 1.0])[0] == pytest.approx(-1.0)
    assert math.isnan(spearman([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])[0])
    ks = sorted(BAM_K_ACCURACY)
    drops = [BAM_K_ACCURACY[k][0] - BAM_K_ACCURACY[k][1] for k in ks]
    # Hand ranks of the published drops (19, 21, 15, 20, 18, 14, -1, 0, -1, 2); ties share the mean rank.
    ranks = [8, 10, 6, 9, 7, 5, 1.5, 3, 1.5, 4]
    expected = np.corrcoef(np.arange(1, 11), ranks)[0, 1]  # Spearman = Pearson of the ranks
    assert spearman(ks, drops)[0] == pytest.approx(expected, abs=1e-9) and expected < -0.7


def _accuracy(model, meta, images, labels) -> float:
    with torch.no_grad():
        return float((model(meta.preprocess(torch.from_numpy(images))).argmax(1).numpy() == labels).mean())


def test_measurements_match_an_independent_recomputation(tiny, models, tmp_path):
    res = verify_models(tiny, models, batch_size=64, out=tmp_path / "v.json")
    with BamFile(tiny) as bf:
        os_, so, og = bf["obj_scene"], bf["scene_only"], bf["obj_gray"]
        val = os_.read("split") == 1
        # Builder provenance (paired_object) gives scene_only's object labels independently of pair matching.
        so_val = so.read("split") == 1
        f_o, m_o = load_classifier(models / "f_o.ckpt")
        r = res.top["f_o"]
        assert r["acc_full"] == pytest.approx(
            _accuracy(f_o, m_o, os_.read("images")[val], os_.read("object_label")[val])
        )
        assert r["acc_only_cf"] == pytest.approx(
            _accuracy(f_o, m_o, so.read("images")[so_val], so.read("paired_object")[so_val])
        )
        og_val = og.read("split") == 1
        f_s, m_s = load_classifier(models / "f_s.ckpt")
        pair_scene = dict(zip(os_.read("pair_index").tolist(), os_.read("scene_label").tolist()))
        og_scene = np.array([pair_scene[p] for p in og.read("pair_index")[og_val]])
        assert res.top["f_s"]["acc_only_cf"] == pytest.approx(
            _accuracy(f_s, m_s, og.read("images")[og_val], og_scene)
        )
        # k-series: the dog x bamboo-forest validation composites with and without the dog.
        sel = val & (os_.read("object_label") == 2) & (os_.read("scene_label") == 0)
        f_k, m_k = load_classifier(models / "f_k0.5.ckpt")
        row = next(r for r in res.k_series if r["k"] == 0.5)
        assert row["n"] == sel.sum() > 0
        assert row["acc_with"] == pytest.approx(
            _accuracy(f_k, m_k, os_.read("images")[sel], np.zeros(sel.sum(), int))
        )
        assert row["drop"] == pytest.approx(row["acc_with"] - row["acc_without"])
    assert [r["k"] for r in res.k_series] == [0.1, 0.5, 1.0] and len(res.checks) == 3 + 4 + 4
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["passed"] == res.passed and data["top"]["f_o"]["n"] == int(val.sum())
    assert (tmp_path / "v.txt").read_text().startswith("BAM Figure 2") and (
        tmp_path / "v_k.png"
    ).stat().st_size > 0
    assert "91.1" in res.table()  # published value shown beside the measured one


def test_cli_exit_code_follows_the_checks(tiny, models, tmp_path, capsys):
    top = tmp_path / "top"
    top.mkdir()
    for name in ("f_o", "f_s"):
        shutil.copy(models / f"{name}.ckpt", top)
    base = ["verify", "--data", str(tiny), "--models", str(top), "--out", str(tmp_path / "v.json")]
    lax = ["--set", "min_acc_cf_removed=0", "--set", "min_conf_rise=0"]
    assert main(base + ["--set", "min_full_acc=0", "--set", "max_chance_ratio=100", *lax]) == 0
    assert "all passed" in capsys.readouterr().out
    assert main(base + ["--set", "min_full_acc=1.01", "--set", "max_chance_ratio=100", *lax]) == 1
    assert "2 premise(s) failed" in capsys.readouterr().err
    # Smoke-trained k-models have (nearly) constant drops: no ordering can be established -> failure.
    assert (
        main(
            [
                "verify",
                "--data",
                str(tiny),
                "--models",
                str(models),
                "--set",
                "max_chance_ratio=100",
                "--set",
                "min_full_acc=0",
                *lax,
                "--out",
                str(tmp_path / "k.json"),
            ]
        )
        == 1
    )
    assert "Spearman" in capsys.readouterr().err


def test_verify_without_models_is_a_one_line_error(tiny, tmp_path, capsys):
    assert main(["verify", "--data", str(tiny), "--models", str(tmp_path)]) == 2
    assert "no BAM models" in capsys.readouterr().err


@pytest.mark.slow
def test_trained_tiny_models_show_the_figure2_orderings(tiny, tmp_path):
    """Properly trained f_o/f_s rely on their own feature: near chance when only the other one is kept."""
    over = TINY + [
        "trainer.max_epochs=12",
        "data.batch_size=32",
        "optim.name=adamw",
        "optim.lr=0.005",
        "optim.backbone_lr=null",
        "optim.warmup_steps=0",
    ]
    for name in ("f_o", "f_s"):
        train_config(shipped(f"train/{name}.yaml"), data=tiny, out=tmp_path, overrides=over)
    # 32 px objects: the orderings only (3x chance overall; the paper's margins are the demo's)
    th = Thresholds(min_full_acc=0.3, min_acc_cf_removed=0.0, min_conf_rise=0.0)
    res = verify_models(tiny, tmp_path, thresholds=th)
    assert res.passed, res.table()


# ------------------------------------------------------------------------------ the premises' margins, planted
def _top(**over):
    r = {"cf_removed_set": "obj_gray", "only_cf_set": "scene_only", "acc_full": 0.95, "acc_cf_removed": 0.9,
         "acc_only_cf": 0.12, "conf_rise": 0.7, "chance": 0.1}  # fmt: skip
    return {**r, **over}


@pytest.mark.parametrize(
    "role, over, failing",
    [
        ("f_o", {}, []),
        ("f_o", {"acc_cf_removed": 0.79}, ["common feature removed"]),
        ("f_o", {"acc_only_cf": 0.21}, ["only the common feature kept"]),
        ("f_o", {"acc_only_cf": 0.2}, []),  # <= 2 x chance holds at the bound
        ("f_o", {"acc_full": 0.4, "conf_rise": 0.1}, ["accuracy on obj_scene"]),  # conf_rise: f_s only
        ("f_s", {}, []),
        ("f_s", {"conf_rise": 0.59}, ["confidence rises"]),
        ("f_s", {"acc_cf_removed": float("nan")}, ["common feature removed"]),  # unmeasured never passes
    ],
)
def test_figure2_top_premises_pass_and_fail_on_planted_measurements(role, over, failing):
    from bamkit.verify.checks import top_checks

    checks = top_checks(role, _top(**over), Thresholds())
    assert sorted(c.name for c in checks if not c.passed) == sorted(
        c.name for c in checks if any(f in c.name for f in failing)
    )
    assert all(any(f in c.name for c in checks if not c.passed) for f in failing)


def _series(drops, n=60):
    ks = [round(0.1 * i, 1) for i in range(1, 11)]
    return [{"k": k, "n": n, "drop": d} for k, d in zip(ks, drops)]


PAPER_DROPS = [0.19, 0.21, 0.15, 0.20, 0.18, 0.14, -0.01, 0.0, -0.01, 0.02]


@pytest.mark.parametrize(
    "series, failing",
    [
        (_series(PAPER_DROPS), []),  # the paper's own Figure 2 passes its margins
        (_series(PAPER_DROPS, n=12), ["images per k-model"]),
        (_series([0.19, 0.21, 0.15, 0.20, 0.18, 0.14, -0.01, 0.0, -0.01, 0.08]), ["drop at k = 1.0"]),
        (_series([0.05, 0.06, 0.04, 0.05, 0.05, 0.04, 0.0, 0.0, 0.0, 0.0]), ["mean accuracy drop"]),
        (_series([0.2, 0.0, 0.2, 0.0, 0.2, 0.0, 0.2, 0.0, 0.2, 0.0]), ["Spearman"]),
    ],
)
def test_k_series_premises_pass_and_fail_on_planted_measurements(series, failing):
    from bamkit.verify.checks import k_checks

    rho, checks = k_checks(series, Thresholds())
    assert rho == pytest.approx(spearman([r["k"] for r in series], [r["drop"] for r in series])[0])
    failed = [c.name for c in checks if not c.passed]
    assert len(failed) == len(failing) and all(any(f in n for n in failed) for f in failing)
    assert k_checks(series[:2], Thresholds()) == (None, [])  # too few k-models: no k checks


def test_a_drop_of_exactly_the_margin_passes():
    """3 of 60 bamboo forests lost without the dog is a 5-point drop: at the k = 1.0 margin, not over it."""
    from bamkit.verify.checks import k_checks
    from bamkit.verify.measure import accuracy_drop

    with_dog, without = np.arange(60) < 45, np.arange(60) < 42
    assert with_dog.mean() - without.mean() > 0.05  # the subtraction of two rounded accuracies overshoots
    drop = accuracy_drop(with_dog, without)
    assert drop == 0.05
    _, checks = k_checks(_series([*PAPER_DROPS[:9], drop]), Thresholds())
    assert all(c.passed for c in checks)
    assert accuracy_drop(without, with_dog) == -0.05 and accuracy_drop(with_dog, with_dog) == 0.0
