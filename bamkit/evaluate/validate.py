"""Validation and loading of evaluation suites: every check that can run before a model is loaded.

Method names and hyper-parameters are checked against the attribution registry, metric names against the
metric registry, sample sizes and scenario settings against their ranges — so a typo fails in a second, not
after an hour of attributions.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from bamkit import config as cfg
from bamkit.errors import BamkitError, ConfigError
from bamkit.evaluate.methods import MethodSpec, build
from bamkit.evaluate.suite import SCENARIO_KINDS, StabilityScenario, Suite, parse
from bamkit.metrics.registry import METRICS


def validate(suite: Suite, where: str = "suite") -> Suite:
    """Check method names/parameters and metric names before any model runs; return ``suite`` unchanged."""
    if not suite.methods:
        raise ConfigError(f"{where}: no methods; list at least one under 'methods:' or pass --method NAME")
    labels = [m.label for m in suite.methods]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(
            f"{where}.methods: label {dup[0]!r} is used twice; give each entry a unique 'label:'"
        )
    for i, m in enumerate(suite.methods):
        _validate_method(m, f"{where}.methods[{i}]")
    known = [n for n, cls in METRICS.items() if cls.derived_from is None]
    for name in suite.metrics:
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
    if suite.concept_methods() and not ({"mcs", "rmcs"} & set(suite.metrics)):
        raise ConfigError(
            f"{where}: concept method(s) {[m.label for m in suite.concept_methods()]} are scored by MCS and "
            "relative MCS only; list 'mcs' or 'rmcs' under metrics:, or remove them"
        )
    if not any(suite.scenario_enabled(k) for k in SCENARIO_KINDS):
        raise ConfigError(f"{where}: every scenario that the listed metrics need is disabled; enable one")
    f = suite.scenarios.faithfulness
    if f.interval < 1 or not 0 <= f.lower_bound < 100:
        raise ConfigError(
            f"{where}.scenarios.faithfulness: need 0 <= lower_bound < 100 and interval >= 1, got "
            f"{f.lower_bound}/{f.interval}"
        )
    for kind in SCENARIO_KINDS:
        mi = getattr(suite.scenarios, kind).max_images
        if mi is not None and mi < 1:
            raise ConfigError(f"{where}.scenarios.{kind}.max_images must be >= 1 or null, got {mi}")
    _validate_stability(suite.scenarios.stability, f"{where}.scenarios.stability")
    return suite


def _validate_stability(st: StabilityScenario, where: str) -> None:
    for key, lo, hi in (("epsilons", 0.0, math.inf), ("ratios", 0.0, 1.0)):
        levels = getattr(st, key)
        if not levels:
            raise ConfigError(f"{where}.{key}: expected at least one level, got an empty list")
        bad = [v for v in levels if not (math.isfinite(v) and lo <= v <= hi)]
        if bad:
            raise ConfigError(
                f"{where}.{key}: level {bad[0]!r} is outside [{lo}, {hi}]; use values such as 0.1 ... 1.0"
            )
        if len(set(levels)) != len(levels):
            raise ConfigError(f"{where}.{key}: levels {list(levels)} repeat a value; list each level once")
    if st.max_n is not None and st.max_n < 2:
        raise ConfigError(f"{where}.max_n must be >= 2 or null (all elements), got {st.max_n}")
    if st.batch_size is not None and st.batch_size < 1:
        raise ConfigError(f"{where}.batch_size must be >= 1 or null, got {st.batch_size}")


def _validate_method(m: MethodSpec, where: str) -> None:
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
) -> Suite:
    """Load ``path``, apply CLI overrides, shrink when ``smoke``, and validate.

    Args:
        methods: extra methods (``--method``): registered names or ``module:callable``; they join the suite's
            methods (a name already listed is not added twice).
    """
    suite = parse(cfg.load_yaml(path), str(path))
    over: dict[str, Any] = {}
    if data is not None:
        over["data"] = str(data)
    if models is not None:
        over["models"] = str(models)
    if patch_data is not None:
        over["patch_data"] = str(patch_data)
    if verify is not None:
        over["verify"] = str(verify)
    if smoke is not None:
        over["smoke"] = smoke
    if seed is not None:
        over["seed"] = seed
    if allow_missing is not None:
        over["allow_missing"] = allow_missing
    extra = [MethodSpec.parse(m, f"--method {m}") for m in methods]
    have = {m.label for m in suite.methods}
    over["methods"] = suite.methods + tuple(m for m in extra if m.label not in have)
    suite = replace(suite, **over)
    if suite.smoke:
        suite = suite.shrunk()
    return validate(suite, str(path))


def suite_from_dict(data: dict[str, Any], where: str = "suite") -> Suite:
    """Build and validate a suite from a mapping (tests, notebooks)."""
    suite = parse(data, where)
    if suite.smoke:
        suite = suite.shrunk()
    return validate(suite, where)
