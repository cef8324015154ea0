"""The paper's findings, checked on hand-made leaderboards (each one passing, failing, and not measured)."""

from __future__ import annotations

import pandas as pd
import pytest

from bamkit.evaluate.findings import check_findings

LABELS = {"VG": "vanilla_gradient", "GxI": "gradient_x_input", "SG": "smoothgrad_sq", "IG": "integrated_gradients",
          "IG-SG": "ig_smoothgrad", "GB": "guided_backprop", "GC": "gradcam", "GGC": "guided_gradcam",
          "Random": "random", "TCAV": "tcav"}  # fmt: skip
ORDER = ["VG", "GxI", "SG", "IG", "IG-SG", "GB", "GC", "GGC"]


def _summary(**metrics):
    rows = [
        {"metric": m, "method": lab, "value": v} for m, vals in metrics.items() for lab, v in vals.items()
    ]
    return pd.DataFrame(rows)


def _paper():
    """A leaderboard shaped like the paper's results: every finding holds."""
    return _summary(
        mcs=dict(zip(ORDER, [0.2, 0.1, 0.3, 0.15, 0.25, 0.05, 0.5, 0.12])) | {"TCAV": 0.9, "Random": 0.99},
        rmcs_rho=dict(zip(ORDER, [0.77, 0.76, 0.69, 0.87, 0.88, 0.8, 0.92, 0.86])),
        idr=dict(zip(ORDER, [0.8, 0.5, 0.4, 0.6, 0.55, 0.45, 0.9, 0.5])),
        idr_random=dict(zip(ORDER, [0.5, 0.52, 0.48, 0.5, 0.51, 0.49, 0.5, 0.5])),
        iir=dict(zip(ORDER, [0.9, 0.1, 0.15, 0.2, 0.1, 0.05, 0.95, 0.1])) | {"Random": 1.0},
        attribution_change=dict(zip(ORDER, [0.1, 0.5, 0.6, 0.4, 0.9, 1.1, 0.05, 0.7])),
    )


def _by_id(summary, labels=LABELS):
    return {f["id"]: f for f in check_findings(summary, labels)}


def test_all_eight_reproduce_on_a_paper_shaped_leaderboard():
    f = _by_id(_paper())
    assert [f[i]["reproduced"] for i in range(1, 9)] == [True] * 8
    assert f[1]["measured"]["ranks"]["GC"] == 1 and f[1]["measured"]["of"] == 8  # TCAV, Random not ranked
    assert f[4]["measured"]["positive"] == 8 and f[6]["measured"]["mean_over_methods"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "metric, method, value, finding",
    [
        ("mcs", "GC", 0.11, 1),  # GC 5th of 8 on MCS
        ("mcs", "GB", 0.6, 2),  # GB first: not in the lower half
        ("rmcs_rho", "GC", 0.4, 3),
        ("idr", "VG", 0.3, 5),
        ("iir", "VG", 0.12, 7),  # VG 3rd (SG 0.15 above it)
        ("attribution_change", "GC", 0.45, 8),
    ],
)
def test_each_finding_fails_when_its_claim_does(metric, method, value, finding):
    s = _paper()
    s.loc[(s.metric == metric) & (s.method == method), "value"] = value
    f = _by_id(s)
    assert f[finding]["reproduced"] is False
    assert sum(x["reproduced"] is False for x in f.values()) == 1  # only that one moved


def test_rho_count_and_random_baseline_fail():
    s = _paper()
    s.loc[(s.metric == "rmcs_rho") & s.method.isin(["VG", "GxI", "SG"]), "value"] = -0.2
    s.loc[s.metric == "idr_random", "value"] = 0.7
    f = _by_id(s)
    assert f[4]["reproduced"] is False and f[4]["measured"]["positive"] == 5
    assert f[6]["reproduced"] is False


def test_missing_methods_or_metrics_are_not_measured():
    s = _paper()
    f = _by_id(s[s.metric != "iir"], {k: v for k, v in LABELS.items() if k != "GC"})
    assert f[7]["reproduced"] is None and f[1]["reproduced"] is None  # no IIR rows; no GradCAM at all
    assert f[2]["reproduced"] is True  # GB is still ranked among the 7 saliency methods present
