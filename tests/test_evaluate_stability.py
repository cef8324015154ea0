"""The evaluate stage's stability scenario (docs/metrics.md#stability) on planted linear models whose attributions are known in
closed form: Vanilla Gradient (and SmoothGrad with paired seeds) of a linear model do not move under input
noise (τ = cosine = 1); Gradient × Input and an identity attribution move by amounts computed here from the
images; masking removes exactly the top-ratio pixels of the clean ranking; chunked batches equal the
per-image reference protocols of bamkit.metrics; sharded runs equal unsharded ones; the report shows it."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

import bamkit.attribution as A
from bamkit.data.h5 import BamFile
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.evaluate.scenarios import stability as S
from bamkit.metrics import input_noise_stability, masking_stability
from bamkit.metrics.stability import masking_copies
from bamkit.provenance import derive_seed
from bamkit.testing.evaluate import center_weight, planted_models, write_planted_file

SIZE = 16
EPS = [0.0, 0.5, 1.0]
RATIOS = [0.1, 0.25, 0.5]


def identity_map(model, inputs, target):
    """a(x) = x: the attribution shows the (perturbed) input itself, so τ/cosine are functions of x and x̂."""
    return inputs.clone()


@pytest.fixture(autouse=True)
def _user_module(monkeypatch):
    mod = types.ModuleType("stab_user_maps")
    mod.identity_map = identity_map
    monkeypatch.setitem(sys.modules, "stab_user_maps", mod)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_planted_file(tmp_path_factory.mktemp("data") / "planted.h5", n_pairs=12, size=SIZE)


@pytest.fixture(scope="module")
def models():
    return {"f_o": planted_models(SIZE)["f_o"]}


def _suite(data, **stab):
    return suite_from_dict(
        {
            "name": "stab",
            "data": str(data),
            "methods": [
                {"name": "vanilla_gradient", "label": "VG"},
                {"name": "gradient_x_input", "label": "GxI"},
                {"name": "smoothgrad", "label": "SG", "n_samples": 3, "sigma": 0.5},
                {"name": "stab_user_maps:identity_map", "label": "Id"},
                {"name": "random", "label": "Random"},
            ],
            "metrics": ["kendall_noise", "cosine_noise", "kendall_masking"],
            "scenarios": {
                "stability": {"max_images": 5, "split": "all", "epsilons": EPS, "ratios": RATIOS, **stab}
            },
            "samples": {"n_trials": 2, "trial_size": 3, "n_boot": 50},
            "execution": {"batch_size": 2},  # several batches; copies of two images share a chunk
        }
    )


@pytest.fixture(scope="module")
def run(data, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    with pytest.MonkeyPatch.context() as mp:
        mod = types.ModuleType("stab_user_maps")
        mod.identity_map = identity_map
        mp.setitem(sys.modules, "stab_user_maps", mod)
        evaluate(_suite(data), out, loaded_models=models)
    return out


def _inputs(data, rows):
    pre = planted_models(SIZE)["f_o"][1].preprocess
    with BamFile(data) as bf:
        return pre(torch.from_numpy(bf["obj_scene"].read("images", np.asarray(rows))))


def _rows(pi, method, protocol):
    d = pi[(pi.scenario == "stability") & (pi.method == method) & (pi.protocol == protocol)]
    return d.sort_values(["image", "level"])


def test_gradient_of_a_linear_model_does_not_move(run):
    """VG of a linear model is w for every input and SG averages the same w: τ = cos = 1. A seeded random map
    ignores the input, so it too gives τ = cos = 1 — only because x and x̂ run with the same per-image seeds."""
    pi = pd.read_csv(run / "per_image.csv")
    for method in ("VG", "SG", "Random"):
        for proto, levels in (("noise", EPS), ("masking", RATIOS)):
            d = _rows(pi, method, proto)
            assert len(d) == 5 * len(levels) and sorted(set(d.level)) == levels
            np.testing.assert_allclose(d[["tau", "cosine"]].to_numpy(), 1.0, atol=1e-6)
    summ = pd.read_csv(run / "summary.csv").set_index(["metric", "method"])
    assert summ.loc[("kendall_noise", "VG"), "value"] == pytest.approx(1.0)
    assert summ.loc[("cosine_noise", "SG"), "value"] == pytest.approx(1.0)


def test_gradient_x_input_under_noise_matches_the_closed_form(run, data):
    """GxI = w ⊙ x moves to w ⊙ (x + ε·u): cosine and τ-b recomputed from the images and the documented
    per-image noise stream (u = 1 − U[0,1) from Generator(seed(suite, 'stability', set, row)), one per ε)."""
    pi = pd.read_csv(run / "per_image.csv")
    d = _rows(pi, "GxI", "noise")
    rows = sorted(set(d.image))
    x = _inputs(data, rows).double()
    w = center_weight(SIZE).double()
    for k, row in enumerate(rows):
        g = torch.Generator().manual_seed(derive_seed(0, "stability", "obj_scene", row))
        a = (w * x[k]).reshape(-1).numpy()
        got = d[d.image == row]
        for eps in EPS:
            u = 1 - torch.rand(x[k].shape, generator=g).double()
            b = (w * (x[k] + eps * u)).reshape(-1).numpy()
            cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            tau = stats.kendalltau(a, b, variant="b").statistic
            r = got[got.level == eps].iloc[0]
            assert r.cosine == pytest.approx(cos, abs=1e-5)
            assert r.tau == pytest.approx(tau, abs=1e-6)
        assert got.tau.iloc[0] == pytest.approx(1.0)  # ε = 0 leaves x unchanged
    # more noise, lower τ and cosine (u > 0 adds mass only where w = 1, so the ranking degrades steadily)
    lv = json.loads((run / "summary.json").read_text())["stability"]["levels"]
    taus = [r["tau_mean"] for r in lv if r["method"] == "GxI" and r["protocol"] == "noise"]
    assert taus == sorted(taus, reverse=True) and taus[-1] < 0.999


def test_masking_zeroes_exactly_the_top_ratio_pixels_of_the_clean_ranking(run, data):
    """With a(x) = x the masked copy is visible in its own attribution: cos(x, x̂) = |x_kept| / |x| where x_kept
    zeroes the round(r·H·W) pixels of largest channel-mean |x| (all channels, a fresh copy per ratio)."""
    pi = pd.read_csv(run / "per_image.csv")
    d = _rows(pi, "Id", "masking")
    rows = sorted(set(d.image))
    x = _inputs(data, rows).double().numpy()
    for k, row in enumerate(rows):
        score = np.abs(x[k]).mean(0).reshape(-1)
        order = np.argsort(-score, kind="stable")
        for r in RATIOS:
            kept = x[k].reshape(3, -1).copy()
            kept[:, order[: round(r * SIZE * SIZE)]] = 0.0
            want = np.linalg.norm(kept) / np.linalg.norm(x[k])
            got = d[(d.image == row) & (d.level == r)].iloc[0]
            assert got.cosine == pytest.approx(want, abs=1e-5)


def test_masking_copies_unit():
    """Distinct scores: the zeroed pixels are exactly the top-k set; other pixels keep their values."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 6, 6, generator=g) + 1.0  # never 0, so zeros mark the mask
    attr = torch.randn(2, 3, 6, 6, generator=g)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    for i, j, xh in masking_copies(x, attr, [0.0, 0.3, 1.0], fill):
        k = round([0.0, 0.3, 1.0][j] * 36)
        top = set(torch.argsort(attr[i].abs().mean(0).reshape(-1), descending=True)[:k].tolist())
        masked = (xh[0] == -1.0).reshape(-1)
        assert set(torch.nonzero(masked)[:, 0].tolist()) == top
        for c in range(3):
            assert torch.equal(xh[c].reshape(-1)[masked], torch.full((k,), -(c + 1.0)))
            assert torch.equal(xh[c].reshape(-1)[~masked], x[i, c].reshape(-1)[~masked])


class _TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_chunked_batches_equal_the_per_image_reference_protocols():
    """A nonlinear model and SmoothGrad: τ/cosine from stacked copies of several images (chunks that mix images)
    equal bamkit.metrics.input_noise_stability / masking_stability run on each image alone with an explain()
    that reuses the image's attribution seed."""
    model = _TinyCNN().eval()
    suite = suite_from_dict(
        {
            "name": "u",
            "data": "unused.h5",
            "methods": [{"name": "smoothgrad", "label": "SG", "n_samples": 4, "sigma": 0.3}],
            "metrics": ["kendall_noise", "kendall_masking"],
            "scenarios": {"stability": {"epsilons": [0.2, 0.7], "ratios": [0.1, 0.6], "max_n": 100}},
        }
    )
    methods = {"SG": A.make("smoothgrad", n_samples=4, sigma=0.3)}
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 2, 1])
    rows = np.array([4, 9, 11])
    attr_seeds, stab_seeds = S.image_seeds(suite.seed, "f_o", "obj_scene", rows)
    res = S.stability_batch(
        suite.scenarios.stability,
        lambda labels: S.make_explain(model, {k: methods[k] for k in labels}, target, attr_seeds),
        ["SG"],
        x,
        stab_seeds,
        ("noise", "masking"),
        chunk=3,
    )
    for i in range(3):

        def explain(z, index, i=i):
            n = z.shape[0]
            return A.attribute(
                model,
                z,
                target[i].expand(n),
                "smoothgrad",
                n_samples=4,
                sigma=0.3,
                seeds=attr_seeds[i].expand(n),
            )

        ref_n = input_noise_stability(explain, x[i : i + 1], [0.2, 0.7], max_n=100, seeds=[stab_seeds[i]])
        ref_m = masking_stability(explain, x[i : i + 1], [0.1, 0.6], max_n=100, seeds=[stab_seeds[i]])
        for proto, ref in (("noise", ref_n), ("masking", ref_m)):
            tau, cos = res[("SG", proto)]
            np.testing.assert_allclose(tau[i], ref.tau[0].double().numpy(), atol=1e-6)
            np.testing.assert_allclose(cos[i], ref.cosine[0].double().numpy(), atol=1e-6)
    assert np.all(res[("SG", "noise")][0] < 1.0)  # the model is nonlinear: the maps do move


def test_sharded_equals_unsharded(run, data, models, tmp_path):
    s = _suite(data)
    for i in range(2):
        evaluate(s, tmp_path, shard=(i, 2), loaded_models=models)
    for name in ("per_image.csv", "per_pair.csv", "summary.csv", "stability.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run / name), pd.read_csv(tmp_path / name))
    parts = [pd.read_csv(tmp_path / "shards" / f"shard{i}of2" / "per_image.csv") for i in range(2)]
    assert all(len(p) for p in parts)  # both shards did work: the split is real


def test_summary_rows_and_correlations(run):
    """Per-image means over the levels feed kendall_/cosine_<protocol>; r(τ, cos) and ρ(τ, level) per method
    equal scipy on the per-image points."""
    pi = pd.read_csv(run / "per_image.csv")
    summ = pd.read_csv(run / "summary.csv").set_index(["metric", "method"])
    d = _rows(pi, "GxI", "noise")
    assert summ.loc[("kendall_noise", "GxI"), "value"] == pytest.approx(d.groupby("image").tau.mean().mean())
    r = stats.pearsonr(d.cosine, d.tau).statistic
    rho = stats.spearmanr(d.level, d.tau).statistic
    assert summ.loc[("tau_cosine_r_noise", "GxI"), "value"] == pytest.approx(r)
    assert summ.loc[("tau_level_rho_noise", "GxI"), "value"] == pytest.approx(rho) and rho < -0.5
    assert np.isnan(summ.loc[("kendall_masking", "GxI"), "rank"])  # protocol 2 is not ranked
    assert summ.loc[("kendall_noise", "VG"), "rank"] == 1


def test_report_has_stability_curves_scatter_and_table(run):
    from bamkit.report import write_report

    page = write_report(run)
    figs = {p.stem for p in (page.parent / "figures").glob("*.png")}
    assert {"stability_curves", "stability_scatter_noise", "stability_scatter_masking"} <= figs
    html = page.read_text(encoding="utf-8")
    assert "Kendall τ and cosine under input deviations" in html and "r(τ, cos)" in html
    lv = pd.read_csv(page.parent / "stability.csv")
    assert set(lv.protocol) == {"noise", "masking"} and set(lv.method) == {"VG", "GxI", "SG", "Id", "Random"}
    md = (page.parent / "report.md").read_text(encoding="utf-8")
    assert "figures/stability_curves.png" in md
