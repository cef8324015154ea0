"""The report: self-contained HTML (only data-URI images, no network), Markdown + CSV consistent with the
results, published values placed beside the right methods, saliency grids present."""

from __future__ import annotations

import base64
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

import bamkit.attribution  # noqa: F401
from bamkit import published as pub
from bamkit.errors import DataError
from bamkit.evaluate import evaluate, suite_from_dict
from bamkit.report import write_report
from bamkit.testing.evaluate import planted_models, write_planted_file

SIZE = 16


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    data = write_planted_file(tmp_path_factory.mktemp("d") / "p.h5", n_pairs=16, size=SIZE)
    suite = suite_from_dict(
        {
            "name": "rep",
            "data": str(data),
            "methods": [
                {"name": "vanilla_gradient", "label": "VG"},
                {"name": "gradient_x_input", "label": "GxI"},
                {"name": "random", "label": "Random"},
                {"name": "reversed", "label": "VG^R", "method": "vanilla_gradient"},
            ],
            "metrics": ["mcs", "rmcs", "idr", "iir", "attribution_change", "rcap", "iauc"],
            "scenarios": {"rmcs": {"models": ["f_k0.1"]}, "faithfulness": {"max_images": 4}},
            "samples": {"n_trials": 3, "trial_size": 4, "n_boot": 100},
        }
    )
    out = tmp_path_factory.mktemp("res")
    evaluate(suite, out, loaded_models=planted_models(SIZE))
    return out


@pytest.fixture(scope="module")
def report(results):
    return write_report(results)


def test_html_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"(?i)(https?:|//[a-z0-9.-]+\.[a-z]{2,}/|<script|<link|@import|url\()", text)
    srcs = re.findall(r'src="([^"]+)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    figs = sorted((report.parent / "figures").glob("*.png"))
    assert len(srcs) == len(figs)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    assert embedded == {f.read_bytes() for f in figs}  # every figure file is embedded, byte for byte
    assert all(b.startswith(b"\x89PNG\r\n\x1a\n") for b in embedded)


def test_every_scenario_has_a_grid_and_markdown_links_exist(report):
    names = {f.stem for f in (report.parent / "figures").glob("*.png")}
    assert {"grid_mcs", "grid_idr", "grid_iir", "grid_rmcs", "mcs", "idr", "rmcs"} <= names
    md = (report.parent / "report.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert links and all((report.parent / link).is_file() for link in links)
    assert "Relative MCS over k on dog_bedroom against" in md  # the suite's rmcs set is named


def test_leaderboard_csv_matches_the_summary_and_places_published_values(results, report):
    lb = pd.read_csv(report.parent / "leaderboard.csv")
    s = pd.read_csv(results / "summary.csv")
    m = lb.merge(s, on=["metric", "method"], suffixes=("", "_s"))
    assert len(m) == len(s)
    pd.testing.assert_series_equal(m["value"], m["value_s"], check_names=False)
    # GAG Table 2 ImageNet-S: VG's RCAP 0.033987 / IAUC 0.451061; reversed VG has no published row
    vg = lb[(lb.method == "VG") & (lb.metric == "rcap")].iloc[0]
    assert vg.published == pytest.approx(0.033987) and "GAG" in vg.published_source
    assert pd.isna(lb[(lb.method == "VG^R") & (lb.metric == "rcap")].iloc[0].published)
    # BAM Fig. 13: VG's Pearson rho 0.77
    assert lb[(lb.method == "VG") & (lb.metric == "rmcs_rho")].iloc[0].published == pytest.approx(0.77)


def test_published_lookup_keys_reversed_maps_by_their_inner_method():
    assert pub.lookup("rcap", "reversed", {"method": "smoothgrad"}).value == pytest.approx(0.015605)
    assert pub.lookup("rcap", "smoothgrad", {}).value == pytest.approx(0.106728)
    assert pub.lookup("mcs", "smoothgrad", {}) is None
    drop = {k: w - wo for k, (w, wo) in pub.BAM_K_ACCURACY.items()}
    assert drop[0.2] == 21 and drop[0.7] == -1  # docs/reproduction.md#published-numbers derived row


def test_report_without_results_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="no summary.json"):
        write_report(tmp_path)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from bamkit.cli import main

    assert main(["report", str(tmp_path / "nothing")]) == DataError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("bamkit report: error:") and "\n" not in err


@pytest.mark.slow
def test_page_renders_in_headless_chromium(report):
    """Debian's chromium opens the page from disk: it renders, every image decodes, no console errors."""
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from report_browser import check_page

    res = check_page(report)
    assert res["errors"] == [] and res["images"] > 0 and res["broken"] == 0, res


def test_counts_and_ranks_print_as_integers_values_keep_their_decimals():
    from bamkit.report.html import cell

    assert cell("rank", 1.0) == "1" and cell("n", 263.0) == "263"
    assert cell("value", 1.0) == "1.000" and cell("rank", 1.5) == "1.500"
    assert cell("rank", float("nan")) == "–"
