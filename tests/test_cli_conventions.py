"""The command line's conventions, for every verb: plain-text --help (no reStructuredText, no reference to
documents outside the repository), -v before or after the subcommand, --set KEY=VALUE on every verb that reads
a config (an error names the flag), --json meaning "print JSON" wherever it exists."""

from __future__ import annotations

import json
import logging
import re

import pytest

from bamkit.cli import COMMANDS, build_parser, main

MARKUP = re.compile(r"``|:func:|:class:|:mod:|:meth:|:data:|SPEC\s§|API\.md|HOUSE_?STYLE")


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [c for c, _, _ in COMMANDS])
def test_help_is_plain_text(command, capsys):
    argv = {"sources": ["sources", "synth"], "configs": ["configs", "copy"]}.get(command, [command])
    text = _help(argv, capsys)
    assert not MARKUP.search(text), f"bamkit {' '.join(argv)} --help shows markup: {MARKUP.search(text)[0]}"


def test_verbose_flag_is_accepted_before_and_after_the_subcommand(capsys, monkeypatch):
    parser = build_parser()
    assert parser.parse_args(["-v", "metrics"]).verbose == 1
    after = parser.parse_args(["metrics", "-vv"])
    assert after.verbose + after.verbose_after == 2
    levels = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: levels.append(kw["level"]))
    for argv in (
        ["metrics", "iir"],
        ["metrics", "iir", "-v"],
        ["-v", "metrics", "iir"],
        ["metrics", "-v", "iir"],
    ):
        assert main(argv) == 0 and "iir_score" in capsys.readouterr().out
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG, logging.DEBUG]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["evaluate", "evaluate/demo.yaml", "--data", "x.h5", "--set", "samples.n_boot=abc"], "expected an integer"),
        (["evaluate", "evaluate/demo.yaml", "--data", "x.h5", "--set", "scenarios.mcs.max_images=0"],
         "max_images must be >= 1"),
        (["run", "--out", "{t}/r", "--set", "workers=0"], "workers must be >= 1"),
        (["build", "data_recipes/demo.yaml", "--out", "{t}/d.h5", "--set", "images_per_pair=lots"], "expected an integer"),
        (["train", "train/f_o.yaml", "--data", "x.h5", "--set", "trainer.max_epochs=0"], "max_epochs must be >= 1"),
        (["verify", "--data", "x.h5", "--models", "m", "--set", "min_conf_rsie=0.5"], "did you mean 'min_conf_rise'"),
    ],
)  # fmt: skip
def test_every_config_verb_takes_set_and_names_it_in_errors(argv, fragment, tmp_path, capsys):
    argv = [a.replace("{t}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "--set" in err and "\n" not in err


def test_json_prints_json(capsys):
    assert main(["methods", "--json"]) == 0
    assert {"name", "defaults"} <= set(json.loads(capsys.readouterr().out)[0])
    assert main(["metrics", "--json"]) == 0
    assert {"name", "params", "function"} <= set(json.loads(capsys.readouterr().out)[0])
