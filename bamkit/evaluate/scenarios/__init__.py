"""The evaluation scenarios: a registry of :class:`~bamkit.evaluate.scenarios.base.Scenario` classes, the
``scenarios:`` section of a suite (:class:`Scenarios`), and the loops over them that the evaluate stage runs —
planning legs, per-pair tables, extra summary rows. Nothing outside a scenario's own module names it.

Built in, in this order (the order of every table and of the report): ``mcs`` (BAM §4.2), ``concept`` (TCAV in
MCS and relative MCS, BAM App. F-G), ``rmcs`` (BAM Fig. 6/13), ``idr`` (BAM §4.3), ``iir`` (BAM §4.4 and
App. C), ``faithfulness`` (the seed papers' per-image metrics) and ``stability`` (Kendall τ and cosine under
input changes). A researcher's scenario registers with :func:`register_scenario` from a module the suite lists
under ``plugins:`` (docs/guides/add-a-scenario.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bamkit import config as cfg
from bamkit.errors import ConfigError
from bamkit.evaluate.legs import Leg, PlanContext
from bamkit.evaluate.pairs import PairTable
from bamkit.evaluate.scenarios.base import (
    SCENARIOS,
    Scenario,
    ScenarioSettings,
    SummaryContext,
    register_scenario,
)

if TYPE_CHECKING:
    import pandas as pd

    from bamkit.evaluate.suite import Suite


class Scenarios(Mapping[str, ScenarioSettings]):
    """A suite's ``scenarios:`` section: scenario name -> its settings, defaults for every registered scenario
    the YAML does not mention (so a scenario registered later still has settings). ``suite.scenarios.iir`` reads
    one scenario's settings."""

    def __init__(self, given: Mapping[str, ScenarioSettings] | None = None) -> None:
        self._given = dict(given or {})

    @classmethod
    def parse(cls, data: Any, where: str) -> Scenarios:
        """Each key's settings validated against its scenario's schema; an unknown key names the close ones."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of scenario -> settings, got {data!r}")
        out = {}
        for key, value in data.items():
            if key not in SCENARIOS:
                close = difflib.get_close_matches(str(key), SCENARIOS.names(), n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(SCENARIOS.names())}"
                )
                raise ConfigError(f"{where}: unknown scenario {key!r}{hint}")
            settings_cls = SCENARIOS.get(key).Settings
            value = {} if value is None else value
            if isinstance(value, Mapping):
                _moved_to_metrics(key, value, f"{where}.{key}")
            out[key] = (
                value
                if isinstance(value, settings_cls)
                else cfg.from_dict(settings_cls, value, f"{where}.{key}")
            )
        return cls(out)

    def __getitem__(self, name: str) -> ScenarioSettings:
        if name in self._given:
            return self._given[name]
        return SCENARIOS.get(name).Settings()

    def __getattr__(self, name: str) -> ScenarioSettings:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(n for n, _ in SCENARIOS.registered())

    def __len__(self) -> int:
        return len(SCENARIOS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scenarios) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def replaced(self, **settings: ScenarioSettings) -> Scenarios:
        return Scenarios({**self._given, **settings})

    def to_dict(self) -> dict[str, Any]:
        return {name: cfg.to_dict(self[name]) for name in self}

    def __repr__(self) -> str:
        return f"Scenarios({self._given!r})"


def _moved_to_metrics(scenario: str, value: Mapping[str, Any], where: str) -> None:
    """A metric's setting written under its scenario (where older suites had IIR's ``t`` and RCAP's bounds):
    say where it goes now."""
    from bamkit.metrics.registry import of_scenario

    fields = set(SCENARIOS.get(scenario).Settings.__dataclass_fields__)
    for key in value:
        if key in fields:
            continue
        owner = next((c.name for c in of_scenario(scenario) if key in c.params), None)
        if owner is None and key == "auc_protocol":
            owner, key = "dauc and iauc", "protocol"
        if owner is not None:
            raise ConfigError(
                f"{where}: {key!r} is a setting of metric {owner!r}, not of the scenario; list the metric as "
                f"{{name: {owner.split()[0]}, {key}: ...}} under metrics:"
            )


def bound(suite: Suite) -> list[Scenario]:
    """Every registered scenario bound to the suite's settings, in registration order."""
    return [cls(suite.scenarios[name]) for name, cls in SCENARIOS.registered()]


def wanted(suite: Suite) -> list[Scenario]:
    """The scenarios this evaluation runs."""
    return [s for s in bound(suite) if s.wanted(suite)]


def get(suite: Suite, name: str) -> Scenario:
    """Scenario ``name`` bound to the suite's settings."""
    return SCENARIOS.get(name)(suite.scenarios[name])


def plan_legs(suite: Suite, bam: Any, roles: set[str]) -> tuple[list[Leg], dict[str, str]]:
    """The legs of every scenario this evaluation runs; ``skipped`` maps a scenario to why it did not run
    (only with ``allow_missing``; otherwise a missing model or set is an error naming it)."""
    ctx = PlanContext(suite, bam, roles)
    legs: list[Leg] = []
    for sc in wanted(suite):
        legs.extend(sc.plan(ctx))
    return legs, ctx.skipped


def pair_table(per_image: pd.DataFrame, suite: Suite) -> PairTable:
    """Per-pair values (long format) and the pair metrics' scores of every scenario, in registry order."""
    out = PairTable()
    if len(per_image):
        have = set(per_image["scenario"])
        for sc in bound(suite):
            if sc.name in have:
                sc.pairs(per_image, suite, out)
    return out.finish()


def unsummarized(suite: Suite) -> set[str]:
    """Scenarios whose per-pair rows are summarised by the scenario itself (no generic leaderboard rows)."""
    return {name for name, cls in SCENARIOS.registered() if not cls.summarize_pairs}


def summary_extras(
    ctx: SummaryContext, nonfinite: dict[tuple[str, str], int] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every scenario's extra leaderboard rows and ``summary.json`` sections, in registry order.

    ``nonfinite``: (scenario, method) -> images whose maps held NaN/Inf; a scenario's own rows rest on its maps,
    so each row without a count of its own gets its scenario's (a method with such maps is shown, not ranked)."""
    rows: list[dict[str, Any]] = []
    sections: dict[str, Any] = {}
    for sc in bound(ctx.suite):
        r, extra = sc.summary(ctx)
        for row in r:
            row.setdefault("n_nonfinite", (nonfinite or {}).get((sc.name, str(row.get("method"))), 0))
        rows.extend(r)
        sections.update(extra)
    return rows, sections


# the built-in scenarios, registered in the order of the tables and the report
# isort: off
from bamkit.evaluate.scenarios import mcs, concept, rmcs, idr, iir, faithfulness, stability  # noqa: E402,F401
# isort: on

__all__ = ["SCENARIOS", "Scenario", "ScenarioSettings", "Scenarios", "SummaryContext", "bound", "get",
           "pair_table", "plan_legs", "register_scenario", "summary_extras", "wanted"]  # fmt: skip
