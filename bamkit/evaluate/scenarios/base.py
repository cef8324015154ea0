"""The scenario interface: everything one evaluation scenario is, in one class.

A scenario (MCS, relative MCS, IDR, IIR, faithfulness, stability, concept, or one of a researcher's own) says

* its typed settings (:class:`ScenarioSettings` subclass: the ``scenarios.<name>:`` section of a suite) and
  their checks (:meth:`ScenarioSettings.check`, :meth:`Scenario.check`), and how ``smoke`` shrinks them;
* which models it needs (:meth:`Scenario.roles`) and which legs it runs (:meth:`Scenario.plan`);
* how a leg is computed (:meth:`Scenario.run_leg`: by default maps, ``g_c`` and the image metrics of
  :class:`~bamkit.evaluate.runner.ShardRunner`), and whether it computes something once per evaluation
  (:meth:`Scenario.run_once`: TCAV);
* its per-pair rows and scores (:meth:`Scenario.pairs`: by default every pair metric the metric registry declares
  into the scenario, over the two members :meth:`Scenario.members` names), and its extra summary rows and
  ``summary.json`` sections (:meth:`Scenario.summary`);
* its place in the report (:attr:`Scenario.group`, :attr:`Scenario.grid_title`, :attr:`Scenario.report_parts`),
  written into ``summary.json`` so that the report renders a results folder on its own.

A new scenario is one module: subclass :class:`Scenario`, decorate it with
:func:`bamkit.evaluate.scenarios.register_scenario`; a new pair metric declares ``scenario = "<name>"`` in its
:class:`~bamkit.metrics.registry.Metric` and is computed by the default :meth:`Scenario.pairs`
(docs/guides/add-a-scenario.md, docs/guides/add-a-metric.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from bamkit.errors import ConfigError
from bamkit.evaluate.legs import Leg, PlanContext, Split
from bamkit.evaluate.pairs import PairTable, join, legs_of, pair_metric
from bamkit.metrics.registry import of_scenario
from bamkit.registry import Registry

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class ScenarioSettings:
    """What every scenario's settings have.

    Args:
        enabled: run the scenario when the suite lists one of its metrics.
        split: the rows it reads: ``val``, ``train`` or ``all``.
        max_images: a seeded subset of at most this many rows (null: all of them).
    """

    enabled: bool = True
    split: Split = "val"
    max_images: int | None = None

    def check(self, where: str) -> None:
        """Range checks beyond the types (the types are checked when the YAML is read); ``where`` names the
        section in messages. Subclasses extend it."""
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(f"{where}.max_images must be >= 1 or null, got {self.max_images}")


@dataclass(frozen=True)
class RandomRegionSettings(ScenarioSettings):
    """Settings of a scenario that can score a random region beside the real one.

    Args:
        random_baseline: also score a random region: another image's object mask at a random place, the
            baseline BAM draws beside MCS (Fig. 4) and IDR (Fig. 8).
    """

    random_baseline: bool = True


@dataclass
class SummaryContext:
    """What a scenario's summary reads.

    Attributes:
        per_image: the evaluation's per-image table; pairs: its :class:`~bamkit.evaluate.pairs.PairTable`.
        acc_drop: the verified accuracy drop per k (``bamkit verify``), or None.
        once: scenario -> what its :meth:`Scenario.run_once` returned.
    """

    suite: Suite
    per_image: pd.DataFrame
    pairs: PairTable
    acc_drop: Mapping[float, float] | None = None
    once: dict[str, Any] = field(default_factory=dict)


class Scenario:
    """One evaluation scenario, bound to its settings (``self.settings``).

    Attributes:
        name: the registry name, the ``scenarios:`` key and the ``scenario`` of its metrics and legs.
        Settings: its settings dataclass.
        smoke_images: ``smoke: true`` caps ``max_images`` at this.
        group: the report section it is shown under.
        grid_title: the caption of its saliency grid in the report (None: no grid).
        summarize_pairs: whether its per-pair rows get leaderboard rows and paired tests (False where the
            scenario summarises them itself: relative MCS's series).
        report_parts: the report's renderings of its results, in order (:data:`bamkit.report.parts.PARTS`):
            ``"bars"`` (a bar chart per ranked metric, with its baseline and chance level), ``"rmcs"``,
            ``"faithfulness"``, ``"stability"``.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[ScenarioSettings]] = ScenarioSettings
    smoke_images: ClassVar[int] = 16
    group: ClassVar[str] = "BAM metrics"
    grid_title: ClassVar[str | None] = None
    summarize_pairs: ClassVar[bool] = True
    report_parts: ClassVar[tuple[str, ...]] = ("bars",)

    def __init__(self, settings: ScenarioSettings | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    # -- settings -------------------------------------------------------------------------------------------
    def check(self, suite: Suite, where: str) -> None:
        """Checks that need the whole suite (which methods, which metrics); ``where`` is the section."""
        self.settings.check(where)

    def smoke_applied(self) -> ScenarioSettings:
        """The ``smoke: true`` settings: at most :attr:`smoke_images` rows."""
        s = self.settings
        return replace(s, max_images=min(s.max_images or self.smoke_images, self.smoke_images))

    # -- what runs ------------------------------------------------------------------------------------------
    def wanted(self, suite: Suite) -> bool:
        """Whether this evaluation runs the scenario: enabled, and the suite lists one of its metrics."""
        return self.settings.enabled and bool(suite.metrics_of(self.name))

    def roles(self, suite: Suite) -> tuple[str, ...]:
        """The model roles the scenario reads."""
        return tuple(r for r in (getattr(self.settings, "model", None),) if r)

    def plan(self, ctx: PlanContext) -> list[Leg]:
        """The legs to compute (call ``ctx.need`` for the models and sets first)."""
        return []

    def run_leg(self, runner: Any, leg: Leg) -> list[pd.DataFrame]:
        """The per-image rows of one leg (default: maps, ``g_c`` and image metrics)."""
        return runner.run_map_leg(leg)

    def run_once(
        self, suite: Suite, bam: Any, models: Mapping[str, Any], opts: Any, cache: Any = None
    ) -> dict[str, Any]:
        """Work done once per evaluation (in shard 0) rather than per row; its result reaches :meth:`summary` as
        ``ctx.once[name]``. ``cache`` (an :class:`~bamkit.evaluate.cache.AttributionCache`) keeps results that
        later evaluations can reuse (``get_json`` / ``put_json``)."""
        return {}

    # -- tables ---------------------------------------------------------------------------------------------
    def members(self) -> tuple[tuple[str, str], tuple[str, str]] | None:
        """The two members of a pair as (role, set) each, for the default :meth:`pairs`; None: no pairs."""
        return None

    def pairs(self, per_image: pd.DataFrame, suite: Suite, out: PairTable) -> None:
        """Per-pair rows and scores of every pair metric declared into this scenario that the suite asks for
        (or that comes with one it asks for), in registration order."""
        m = self.members()
        if m is None:
            return
        (role_a, set_a), (role_b, set_b) = m
        a = legs_of(per_image, self.name, role_a, set_a)
        b = legs_of(per_image, self.name, role_b, set_b)
        for cls in of_scenario(self.name):
            if cls.per != "pair" or not suite.computes(cls.name):
                continue
            col = cls.column
            if col in a and a[col].notna().any():
                pair_metric(cls.name, join(a, b, col), col, self.name, out, **suite.metric_params(cls.name))

    def summary(self, ctx: SummaryContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Extra leaderboard rows (beyond the per-pair metrics' own) and ``summary.json`` sections."""
        return [], {}

    # -- report ---------------------------------------------------------------------------------------------
    def describe(self, suite: Suite) -> dict[str, Any]:
        """What the report needs to know of this scenario (``summary.json["scenarios"]``), so that it renders a
        results folder without importing the code that produced it."""
        return {
            "name": self.name,
            "group": self.group,
            "grid_title": self.grid_title,
            "parts": list(self.report_parts),
            "metrics": [c.name for c in of_scenario(self.name) if suite.computes(c.name)],
        }


SCENARIOS: Registry[type[Scenario]] = Registry("scenario", "bamkit metrics")


def register_scenario(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: add a :class:`Scenario` subclass to :data:`SCENARIOS` under its ``name``."""
    if not getattr(cls, "name", ""):
        raise TypeError(f"scenario class {cls.__name__} sets no 'name'")
    SCENARIOS.add(cls.name, cls)
    return cls
