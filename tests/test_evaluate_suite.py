"""Suite loading and validation: everything is checked before any model runs."""

from __future__ import annotations

import pytest
import yaml

import bamkit.attribution  # noqa: F401  (registers the built-in methods)
from bamkit.errors import ConfigError
from bamkit.evaluate import load_suite, parse_shard, suite_from_dict
from bamkit.evaluate.methods import MethodSpec
from bamkit.paths import shipped

BASE = {"name": "t", "data": "x.h5", "models": "m", "methods": [{"name": "vanilla_gradient", "label": "VG"}]}


def test_method_entries_parse_label_and_params():
    s = suite_from_dict(
        {
            **BASE,
            "methods": [
                "vanilla_gradient",
                {"name": "smoothgrad", "label": "SG", "n_samples": 4, "sigma": 0.1},
            ],
        }
    )
    assert [m.label for m in s.methods] == ["vanilla_gradient", "SG"]
    assert s.methods[1].params == {"n_samples": 4, "sigma": 0.1}
    # the cache key depends on what is computed (name + params), not on the label
    a = MethodSpec("A", "smoothgrad", {"n_samples": 4})
    b = MethodSpec("B", "smoothgrad", {"n_samples": 4})
    c = MethodSpec("A", "smoothgrad", {"n_samples": 5})
    assert a.key == b.key != c.key


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"methods": [{"name": "intgrad"}]}, "unknown attribution 'intgrad'"),
        ({"methods": [{"name": "smoothgrad", "n_sample": 3}]}, "n_sample"),
        ({"methods": [{"name": "vanilla_gradient"}, {"name": "vanilla_gradient"}]}, "used twice"),
        ({"methods": []}, "no methods"),
        ({"metrics": ["mcs", "idrr"]}, "did you mean 'idr'"),
        (
            {"metrics": ["kendall_masking"], "scenarios": {"stability": {"ratios": [0.5, 1.5]}}},
            "level 1.5 is outside [0.0, 1.0]",
        ),
        ({"metrics": ["kendall_noise"], "scenarios": {"stability": {"epsilons": []}}}, "at least one level"),
        ({"metrics": ["kendall_noise"], "scenarios": {"stability": {"variant": "a"}}}, "variant"),
        ({"samples": {"n_trials": 0}}, "n_trials"),
        ({"scenarios": {"mcs": {"max_imgs": 3}}}, "did you mean 'max_images'"),
        ({"metrics": ["mcs"], "scenarios": {"mcs": {"enabled": False}}}, "disabled"),
        ({"methods": [{"name": "no_such_module_xyz:fn"}]}, "cannot import"),
    ],
)
def test_invalid_suites_fail_with_one_line_naming_the_problem(change, fragment):
    with pytest.raises(ConfigError) as e:
        suite_from_dict({**BASE, **change})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_smoke_shrinks_sample_sizes():
    s = suite_from_dict({**BASE, "smoke": True, "scenarios": {"mcs": {"max_images": 500}}})
    assert s.scenarios.mcs.max_images == 16 and s.samples.n_trials == 3
    assert s.scenarios.idr.max_images == 16  # None (all) becomes the smoke cap too
    assert s.scenarios.stability.max_images == 4


def test_cli_overrides_and_extra_methods(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(BASE))
    s = load_suite(p, data="d.h5", models="mm", methods=["gradient_x_input", "vanilla_gradient"], smoke=True)
    assert (s.data, s.models, s.smoke) == ("d.h5", "mm", True)
    # a method already listed under the same label is not added twice
    assert [m.label for m in s.methods] == ["VG", "gradient_x_input", "vanilla_gradient"]


@pytest.mark.parametrize("name", ["demo", "paper", "seeds"])
def test_shipped_suites_validate(name):
    """Every entry of a shipped suite survives loading, and every listed metric has its scenario enabled
    (a metric whose scenario is off would silently produce nothing)."""
    from bamkit.metrics.registry import METRICS

    raw = yaml.safe_load(shipped(f"evaluate/{name}.yaml").read_text())
    s = load_suite(shipped(f"evaluate/{name}.yaml"))
    assert [m.label for m in s.methods] == [e.get("label", e["name"]) for e in raw["methods"]]
    assert [m.to_yaml() for m in s.metrics] == raw["metrics"]
    off = [m for m in s.metric_names if not s.scenario_enabled(METRICS.get(m).scenario)]
    assert off == []


def test_paper_suite_takes_the_fast_path_on_cuda_only():
    """The shipped paper suite pins nothing that would keep a GPU on fp32 eager: decided for a CUDA device with
    bf16 it is bf16 + channels_last + compile, for the CPU fp32 eager (the exact path)."""
    e = load_suite(shipped("evaluate/paper.yaml")).execution
    fast = {"precision": "bf16", "channels_last": True, "compile": True, "fold_bn": False}
    assert e.decided_for("cuda", bf16=True) == fast
    assert e.decided_for("cpu") == {
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "fold_bn": False,
    }


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/8", (3, 8)), (None, (0, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["2/2", "-1/3", "a/b", "1"])
def test_parse_shard_rejects(text):
    with pytest.raises(ConfigError):
        parse_shard(text)
