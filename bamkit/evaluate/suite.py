"""Evaluation suites: which data, models, methods, metrics, scenarios and sample sizes (frozen dataclasses).

A suite YAML is one instance of :class:`Suite`; :mod:`bamkit.evaluate.validate` checks everything (method names
and hyper-parameters against the attribution registry, metric names and parameters against the metric
registry, each scenario's settings against its own schema) before any model runs, so a typo fails in a second
instead of after an hour of attributions. Which scenario produces a metric, its saliency mode and its direction
are the metric registry's (:mod:`bamkit.metrics.registry`); the scenarios are :mod:`bamkit.evaluate.scenarios`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from bamkit import config as cfg
from bamkit.devices import decide
from bamkit.errors import ConfigError
from bamkit.evaluate.methods import MethodSpec, is_concept
from bamkit.evaluate.scenarios import Scenarios, bound
from bamkit.imports import import_object, load_file
from bamkit.metrics.registry import METRICS, scored
from bamkit.published import K_GRID, k_model

DEFAULT_ROLES = {"f_o": "f_o", "f_s": "f_s", "f_empty": "f_empty", **{k_model(k): k_model(k) for k in K_GRID}}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite: ``rcap`` or ``{name: rcap, lower_bound: 60}``.

    Args:
        name: a registered metric (``bamkit metrics``).
        params: settings of the metric's function (``bamkit metrics NAME`` lists them with their defaults).
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry: Any, where: str) -> MetricSpec:
        if isinstance(entry, str):
            return cls(entry)
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            params = dict(entry)
            return cls(params.pop("name"), params)
        raise ConfigError(
            f"{where}: expected a metric name or {{name: <metric>, ...settings}}, got {entry!r}"
        )

    def to_yaml(self) -> str | dict[str, Any]:
        return {"name": self.name, **self.params} if self.params else self.name


@dataclass(frozen=True)
class Samples:
    """Statistics (docs/conventions.md#statistics): ``n_trials`` random subsets of ``trial_size`` pairs (BAM's
    "10 trials of 100 pairs"), bootstrap CIs."""

    n_trials: int = 10
    trial_size: int = 100
    n_boot: int = 1000
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for k in ("n_trials", "trial_size", "n_boot"):
            if getattr(self, k) < 1:
                raise ConfigError(f"samples.{k} must be >= 1, got {getattr(self, k)}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"samples.alpha must be in (0, 1), got {self.alpha}")


@dataclass(frozen=True)
class Execution:
    """How the work runs: image batch, gradient-sample batch, numerics, and Lightning Fabric scale-out.

    ``device`` (e.g. ``"cuda"``) moves the models of a single-process run there (default: where
    ``load_classifier`` put them, the CPU); inputs and maps follow the model. ``devices``/``num_nodes``/
    ``strategy``/``accelerator`` are passed to ``lightning.fabric.Fabric``: with more than one process each
    rank evaluates a disjoint shard of the rows on its own device and rank 0 merges the shards.

    ``precision``, ``channels_last`` and ``compile`` default to ``auto``: the fast path (bf16, channels_last,
    ``torch.compile``) on a CUDA device, bf16 on a CPU with AMX tiles, fp32 eager elsewhere (:meth:`decided_for`,
    :mod:`bamkit.devices`). ``fold_bn: true`` runs each model with its BatchNorms folded into the convolutions
    before them (:mod:`bamkit.attribution.fold`): the same function up to rounding, the demo's evaluate stage 0.89x
    of its time on a CPU; off by default, since the exact maps are worth more than that. The run records what it used and, off the
    exact path, the maps' rank fidelity against unfolded fp32 eager ones per method. ``precision: fp32`` with
    ``compile``, ``channels_last`` and ``fold_bn`` false is the exact path on any device.
    """

    batch_size: int = 32
    sample_batch_size: int = 64
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = "auto"
    fold_bn: bool = False
    device: str | None = None
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        for k in ("batch_size", "sample_batch_size", "devices", "num_nodes"):
            if getattr(self, k) < 1:
                raise ConfigError(f"execution.{k} must be >= 1, got {getattr(self, k)}")

    def decided_for(self, device: str | torch.device, bf16: bool | None = None) -> dict[str, Any]:
        """``precision``, ``channels_last``, ``compile`` with ``auto`` decided for ``device`` by the one rule of
        :func:`bamkit.devices.decide` (the fast path on CUDA, fp32 eager on a CPU without AMX bf16 tiles), and
        ``fold_bn`` as set."""
        numerics = decide(device, self.precision, self.channels_last, self.compile, bf16=bf16).as_dict()
        return {**numerics, "fold_bn": bool(self.fold_bn)}


@dataclass(frozen=True)
class Suite:
    """An evaluation suite (``evaluate/<suite>.yaml``).

    Paths ``data``, ``models``, ``patch_data`` (a second dataset file with sets the first lacks, e.g. the δ
    patches of ``bamkit delta --out``) and ``verify`` (the ``bamkit verify`` JSON) are relative to the current
    directory (they name run outputs, not configs); the CLI flags and :func:`bamkit.evaluate.run_suite`
    override them. A metric the suite asks for whose models or sets are absent is an error naming what is
    missing, unless ``allow_missing`` (``--allow-missing``) says to skip it. ``plugins`` are Python modules
    (``package.module``, or a ``.py`` file relative to the suite file) imported before anything else is read:
    where a researcher's own scenarios and metrics register.
    """

    name: str = "suite"
    data: str | None = None
    models: str | None = None
    patch_data: str | None = None
    verify: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    methods: tuple[MethodSpec, ...] = ()
    metrics: tuple[MetricSpec, ...] = tuple(
        MetricSpec(m) for m in ("mcs", "rmcs", "idr", "iir", "attribution_change")
    )
    scenarios: Scenarios = field(default_factory=Scenarios)
    samples: Samples = field(default_factory=Samples)
    execution: Execution = field(default_factory=Execution)
    seed: int = 0
    smoke: bool = False
    grid_examples: int = 1
    allow_missing: bool = False  # a scenario whose models or sets are absent is skipped instead of an error
    plugins: tuple[str, ...] = ()

    # -- methods --------------------------------------------------------------------------------------------
    def role_file(self, role: str) -> str:
        """The checkpoint stem (``<models>/<stem>.ckpt``) that plays ``role``."""
        return self.roles.get(role, DEFAULT_ROLES.get(role, role))

    def concept_methods(self) -> tuple[MethodSpec, ...]:
        """The suite's concept methods (TCAV): scored in MCS / relative MCS from concept sets, not maps."""
        return tuple(m for m in self.methods if is_concept(m))

    def map_methods(self) -> tuple[MethodSpec, ...]:
        """The suite's map methods (everything that makes a per-pixel attribution)."""
        return tuple(m for m in self.methods if not is_concept(m))

    # -- metrics --------------------------------------------------------------------------------------------
    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def metrics_of(self, scenario: str) -> tuple[str, ...]:
        """The listed metrics that ``scenario`` produces (the registry says which)."""
        return scored(self.metric_names, scenario)

    def computes(self, name: str) -> bool:
        """Whether metric ``name`` is listed, or is a derived row of a listed one (``mcs_random`` of ``mcs``)."""
        if name in self.metric_names:
            return True
        parent = METRICS.get(name).derived_from if name in METRICS else None
        return parent is not None and parent in self.metric_names

    def metric_params(self, name: str) -> dict[str, Any]:
        """The settings metric ``name`` runs with: its function's defaults, updated by the suite's entry."""
        given = next((m.params for m in self.metrics if m.name == name), {})
        return METRICS.get(name).settings(given, f"{self.name}.metrics[{name}]") if name in METRICS else {}

    def saliency_modes(self, scenario: str) -> tuple[str, ...]:
        """The ``to_saliency`` modes the metrics of ``scenario`` read (sorted)."""
        modes = {METRICS.get(m).saliency for m in self.metrics_of(scenario)}
        return tuple(sorted(m for m in modes if m is not None))

    def scenario_enabled(self, name: str) -> bool:
        """Whether this evaluation runs scenario ``name``."""
        from_registry = {sc.name: sc for sc in bound(self)}
        return name in from_registry and from_registry[name].wanted(self)

    # -- files ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f: cfg.to_dict(getattr(self, f)) for f in self.__dataclass_fields__}
        d["methods"] = [{"name": m.name, "label": m.label, **m.params} for m in self.methods]
        d["metrics"] = [m.to_yaml() for m in self.metrics]
        d["scenarios"] = self.scenarios.to_dict()
        return d

    def smoke_applied(self) -> Suite:
        """The suite actually run: with ``smoke: true``, few images per scenario, few trials, few bootstrap
        draws (a wiring check)."""
        if not self.smoke:
            return self
        scen = self.scenarios.replaced(**{sc.name: sc.smoke_applied() for sc in bound(self)})
        return replace(
            self, scenarios=scen, samples=replace(self.samples, n_trials=3, trial_size=8, n_boot=100)
        )


def import_plugins(plugins: Any, where: str, base: Path | None = None) -> tuple[str, ...]:
    """Import the suite's ``plugins`` (module names, or ``.py`` files relative to ``base``): their scenarios,
    metrics and methods register on import. A module that cannot be imported is one line naming it."""
    if plugins is None:
        return ()
    if isinstance(plugins, str) or not isinstance(plugins, (list, tuple)):
        raise ConfigError(f"{where}.plugins: expected a list of modules or .py files, got {plugins!r}")
    for i, p in enumerate(plugins):
        if not isinstance(p, str) or not p:
            raise ConfigError(f"{where}.plugins[{i}]: expected a module name or a .py file, got {p!r}")
        if p.endswith(".py"):
            path = Path(p) if Path(p).is_absolute() or base is None else base / p
            load_file(path, f"{where}.plugins[{i}]")
            continue
        import_object(f"{p}:__name__", f"{where}.plugins[{i}]")
    return tuple(plugins)


def parse(data: dict[str, Any], where: str, base: Path | None = None) -> Suite:
    """A :class:`Suite` from a parsed YAML mapping (types checked; see :func:`~bamkit.evaluate.validate.validate`).

    Args:
        base: the folder relative ``plugins`` files are found in (the suite file's).
    """
    data = dict(data)
    plugins = import_plugins(data.pop("plugins", None), where, base)
    raw_methods = data.pop("methods", [])
    if not isinstance(raw_methods, list):
        raise ConfigError(f"{where}.methods: expected a list of {{name: ..., params}}, got {raw_methods!r}")
    methods = tuple(MethodSpec.parse(m, f"{where}.methods[{i}]", base) for i, m in enumerate(raw_methods))
    over: dict[str, Any] = {"methods": methods, "plugins": plugins}
    if "metrics" in data:
        raw = data.pop("metrics")
        if not isinstance(raw, list):
            raise ConfigError(f"{where}.metrics: expected a list of metric names, got {raw!r}")
        over["metrics"] = tuple(MetricSpec.parse(m, f"{where}.metrics[{i}]") for i, m in enumerate(raw))
    over["scenarios"] = Scenarios.parse(data.pop("scenarios", None), f"{where}.scenarios")
    suite = cfg.from_dict(Suite, data, where)
    return replace(suite, **over)


__all__ = ["Execution", "MetricSpec", "MethodSpec", "Samples", "Suite", "import_plugins", "parse"]
