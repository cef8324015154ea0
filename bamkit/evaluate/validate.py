"""Validation and loading of evaluation suites: every check that can run before a model is loaded.

Method names and hyper-parameters are checked against the attribution registry, metric names against the
metric registry, sample sizes and scenario settings against their ranges — so a typo fails in a second, not
after an hour of attributions.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import Any

from bamkit import config as cfg
from bamkit.errors import BamkitError, ConfigError
from bamkit.evaluate import scenarios
from bamkit.evaluate.methods import MethodSpec, build
from bamkit.evaluate.suite import Suite, parse
from bamkit.metrics.registry import METRICS


def validate(suite: Suite, where: str = "suite") -> Suite:
    """Check methods, metrics (names, parameters) and every scenario's settings before any model runs; return
    ``suite`` unchanged."""
    if not suite.methods:
        raise ConfigError(f"{where}: no methods; list at least one under 'methods:' or pass --method NAME")
    labels = [m.label for m in suite.methods]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(
            f"{where}.methods: label {dup[0]!r} is used twice; give each entry a unique 'label:'"
        )
    for i, m in enumerate(suite.methods):
        validate_method(m, f"{where}.methods[{i}]")
    _validate_metrics(suite, where)
    for sc in scenarios.bound(suite):
        sc.check(suite, f"{where}.scenarios.{sc.name}")
    if not scenarios.wanted(suite):
        raise ConfigError(f"{where}: every scenario that the listed metrics need is disabled; enable one")
    return suite


def _validate_metrics(suite: Suite, where: str) -> None:
    known = [n for n, cls in METRICS.items() if cls.derived_from is None]
    names = suite.metric_names
    for i, spec in enumerate(suite.metrics):
        name = spec.name
        if name in METRICS and METRICS.get(name).derived_from is not None:
            parent = METRICS.get(name).derived_from
            raise ConfigError(
                f"{where}.metrics: {name!r} is a summary row of {parent!r}, not a metric to request; "
                f"list {parent!r} and it comes with it"
            )
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"{where}.metrics: unknown metric {name!r}{hint} (bamkit metrics lists all)")
        if names.count(name) > 1:
            raise ConfigError(f"{where}.metrics: {name!r} is listed twice; list each metric once")
        cls = METRICS.get(name)
        if cls.scenario not in scenarios.SCENARIOS:
            raise ConfigError(
                f"{where}.metrics: metric {name!r} belongs to scenario {cls.scenario!r}, which is not registered; "
                "list the module that registers it under 'plugins:'"
            )
        cls.settings(spec.params, f"{where}.metrics[{i}] ({name})")


def validate_method(m: MethodSpec, where: str) -> None:
    try:
        build(m)
    except BamkitError as e:  # unknown names (registry) and bad parameters alike: one line, with the entry
        raise ConfigError(f"{where}: {e}") from None


def load_suite(
    path: str | Path,
    *,
    data: str | Path | None = None,
    models: str | Path | None = None,
    methods: tuple[str, ...] | list[str] = (),
    smoke: bool | None = None,
    patch_data: str | Path | None = None,
    verify: str | Path | None = None,
    seed: int | None = None,
    allow_missing: bool | None = None,
    overrides: tuple[str, ...] | list[str] = (),
) -> Suite:
    """Load ``path``, apply CLI overrides, shrink when ``smoke``, and validate.

    Args:
        methods: extra methods (``--method``): registered names or ``module:callable``; they join the suite's
            methods (a name already listed is not added twice).
        overrides: ``--set KEY=VALUE`` values for any key of the suite (``samples.n_boot=200``,
            ``scenarios.mcs.max_images=50``); an error they cause names them.
    """
    flags: dict[str, Any] = {
        k: str(v) if isinstance(v, Path) else v
        for k, v in {"data": data, "models": models, "patch_data": patch_data, "verify": verify, "smoke": smoke,
                     "seed": seed, "allow_missing": allow_missing}.items()
        if v is not None
    }  # fmt: skip
    extra = []
    for m in methods:  # checked here, so that an error names the flag rather than the suite file
        spec = MethodSpec.parse(m, f"--method {m}")
        validate_method(spec, f"--method {m}")
        extra.append(spec)

    def build(raw: dict[str, Any], where: str) -> Suite:
        suite = parse(raw, where, base=Path(path).parent)
        return validate(
            replace(suite, **flags, methods=with_methods(suite.methods, extra)).smoke_applied(), where
        )

    return cfg.overridden(cfg.load_yaml(path), overrides, build, str(path))


def with_methods(have: tuple[MethodSpec, ...], extra: list[MethodSpec]) -> tuple[MethodSpec, ...]:
    """The suite's methods and the extra ones (``--method``): an extra one already listed under its label (same
    method and parameters) is not added twice; a label taken by another method is an error naming the flag."""
    out = list(have)
    for spec in extra:
        same = next((m for m in out if m.label == spec.label), None)
        if same is None:
            out.append(spec)
        elif (same.name, same.params) != (spec.name, spec.params):
            raise ConfigError(
                f"--method {spec.label}={spec.name}: the label {spec.label!r} is taken by {same.name!r}; give yours "
                f"another one: --method MYLABEL={spec.name}"
            )
    return tuple(out)


def suite_from_dict(data: dict[str, Any], where: str = "suite") -> Suite:
    """Build and validate a suite from a mapping (tests, notebooks)."""
    suite = parse(data, where)
    return validate(suite.smoke_applied(), where)
