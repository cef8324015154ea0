"""Evaluation suites: which data, models, methods, metrics, scenarios and sample sizes (frozen dataclasses).

A suite YAML is one instance of :class:`Suite`; everything is validated (method names and hyper-parameters
against the attribution registry, metric names against the metric registry, roles against the scenarios)
before any model runs, so a typo fails in a second instead of after an hour of attributions.

Method entries follow HOUSE_STYLE: ``{name: integrated_gradients, label: IG, n_steps: 64}`` — ``name`` is a
registered method or ``module:callable``, ``label`` the column name in tables (default: ``name``), every other
key a hyper-parameter of the method's constructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bamkit import config as cfg
from bamkit.errors import BamkitError, ConfigError
from bamkit.metrics.registry import METRICS
from bamkit.provenance import json_hash

K_VALUES = tuple(f"{k / 10:.1f}" for k in range(1, 11))
DEFAULT_ROLES = {"f_o": "f_o", "f_s": "f_s", "f_empty": "f_empty", **{f"f_k{k}": f"f_k{k}" for k in K_VALUES}}

# Which scenario produces each metric (SPEC §3): BAM pair metrics and the seeds' per-image metrics.
METRIC_SCENARIO: dict[str, str] = {
    "mcs": "mcs",
    "rmcs": "rmcs",
    "idr": "idr",
    "iir": "iir",
    "attribution_change": "iir",
    "rcap": "faithfulness",
    "dauc": "faithfulness",
    "iauc": "faithfulness",
    "dice": "faithfulness",
    "logcosh_dice": "faithfulness",
    "mae": "faithfulness",
    "sqrt_mae": "faithfulness",
    "rmse": "faithfulness",
    "pointing_game": "faithfulness",
    "aupc": "faithfulness",
    "autvc": "faithfulness",
    "mutual_information": "faithfulness",
    # stability (SPEC §3.9): τ and cosine are computed together; either name switches its protocol on
    "kendall_noise": "stability",
    "cosine_noise": "stability",
    "kendall_masking": "stability",
    "cosine_masking": "stability",
}
# Stability protocol of each stability metric name (SPEC §3.9: 1 = input noise, 2 = attribution-guided masking).
STABILITY_PROTOCOL: dict[str, str] = {
    "kendall_noise": "noise",
    "cosine_noise": "noise",
    "kendall_masking": "masking",
    "cosine_masking": "masking",
}
# The 2-D reducer (to_saliency mode) and the direction of each metric come from the metric registry
# (bamkit.metrics.registry, SPEC §1.3 / §3.12), so the two cannot drift apart.
METRIC_REDUCER: dict[str, str] = {name: cls.reducer for name, cls in METRICS.items()}
# Summary rows derived by the evaluate stage (baselines, correlations) are read, not ranked: None.
HIGHER_IS_BETTER: dict[str, bool | None] = {
    **{name: cls.higher_is_better for name, cls in METRICS.items()},
    "mcs_random": None,
    "rmcs_rho": True,
    "rmcs_rho9": True,
    "idr_random": None,
    "tau_cosine_r_noise": None,
    "tau_level_rho_noise": None,
    "tau_cosine_r_masking": None,
    "tau_level_rho_masking": None,
}


@dataclass(frozen=True)
class MethodSpec:
    """One attribution method of a suite.

    Args:
        label: the method's name in tables and plots ("SG", "IG", ...); unique within a suite.
        name: a registered method (``bamkit methods``) or ``module:callable`` (a function
            ``f(model, inputs, target) -> Tensor`` or a captum ``Attribution`` class/instance factory).
        params: hyper-parameters for the method's constructor.
    """

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Cache key of what this method computes: the name and a hash of its parameters (not the label)."""
        return f"{self.name.replace('/', '_').replace(':', '.')}-{json_hash(self.params)[:12]}"

    @classmethod
    def parse(cls, entry: Any, where: str) -> MethodSpec:
        """``{name: ..., label: ..., **params}`` or a bare name string."""
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(
                f"{where}: expected {{name: <method>, ...params}} or a method name, got {entry!r}"
            )
        entry = dict(entry)
        name = entry.pop("name")
        label = entry.pop("label", None) or name
        if not isinstance(label, str):
            raise ConfigError(f"{where}.label: expected a string, got {label!r}")
        return cls(label=label, name=name, params=entry)


@dataclass(frozen=True)
class MCSScenario:
    """MCS (BAM §4.2): f_o vs f_s on the same X_{o,s} images, object masks, random-region baseline."""

    enabled: bool = True
    models: tuple[str, str] = ("f_o", "f_s")
    set: str = "obj_scene"
    split: Literal["val", "train", "all"] = "val"
    max_images: int | None = None
    random_baseline: bool = True


@dataclass(frozen=True)
class RMCSScenario:
    """Relative MCS (BAM §4.2, Fig. 6/13): each f_k vs the reference model on ``set``; Pearson ρ vs acc. drop."""

    enabled: bool = True
    models: tuple[str, ...] = tuple(f"f_k{k}" for k in K_VALUES[:-1])
    reference: str = "f_k1.0"
    set: str = "dog_bedroom"
    split: Literal["val", "train", "all"] = "all"
    max_images: int | None = None


@dataclass(frozen=True)
class IDRScenario:
    """IDR (BAM §4.3): f_s on X_{o,s} vs the paired X_{∅,s} image, object region, random-region baseline."""

    enabled: bool = True
    model: str = "f_s"
    set: str = "obj_scene"
    paired_set: str = "scene_only"
    split: Literal["val", "train", "all"] = "val"
    max_images: int | None = None
    random_baseline: bool = True


@dataclass(frozen=True)
class IIRScenario:
    """IIR (BAM §4.4) and App. C's relative change: f_empty on bamboo_forest vs bamboo_forest_patch (x + δ)."""

    enabled: bool = True
    model: str = "f_empty"
    set: str = "bamboo_forest"
    paired_set: str = "bamboo_forest_patch"
    split: Literal["val", "train", "all"] = "all"
    max_images: int | None = None
    t: float = 0.1


@dataclass(frozen=True)
class FaithfulnessScenario:
    """The seeds' per-image metrics (RCAP, DAUC/IAUC, Dice/MAE vs object masks, ...) on one model and set."""

    enabled: bool = True
    model: str = "f_o"
    set: str = "obj_scene"
    split: Literal["val", "train", "all"] = "val"
    max_images: int | None = 64
    lower_bound: int = 50
    interval: int = 10
    auc_protocol: Literal["gag10", "rise"] = "gag10"


LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class StabilityScenario:
    """Robustness of the raw attributions (SPEC §3.9; Park, Wang & Kong 2022): Kendall τ and cosine between
    a(x) and a(x̂) for every method, image and deviation level.

    * Protocol 1 (metrics ``kendall_noise`` / ``cosine_noise``): ``x̂ = x + ε·u``, u uniform in (0, 1] per element,
      drawn per image from a generator seeded by (suite seed, set, row), a fresh u for every ε.
    * Protocol 2 (``kendall_masking`` / ``cosine_masking``): the top ``ratio`` pixels of the *clean*
      attribution's channel-mean |a| are set to ``fill`` in all channels, on a fresh copy of x per ratio.

    The method runs with the image's own seeds on x and on every x̂, so stochastic methods (SmoothGrad, ...)
    see the same noise draws: the comparison measures the input change, not sampling noise.

    Args:
        model, set, split, max_images: the images (a seeded subset, as the other scenarios).
        epsilons: ε of protocol 1 (normalised input units).
        ratios: removed fractions of protocol 2, in [0, 1].
        variant: Kendall τ-b (bamkit default) or τ-c (Park's notebook).
        max_n: compare a seeded random subset of this many attribution elements (None: all of them).
        fill: masked value: ``"mean"`` (0 in normalised space = the mean colour) or ``"black"`` (pixel 0).
        correct_only: summarise only correctly classified images (Park uses every image: default False).
        batch_size: perturbed copies per ``attribute_many`` call (default ``execution.batch_size``).
    """

    enabled: bool = True
    model: str = "f_o"
    set: str = "obj_scene"
    split: Literal["val", "train", "all"] = "val"
    max_images: int | None = 50
    epsilons: tuple[float, ...] = LEVELS
    ratios: tuple[float, ...] = LEVELS
    variant: Literal["b", "c"] = "b"
    max_n: int | None = None
    fill: Literal["mean", "black"] = "mean"
    correct_only: bool = False
    batch_size: int | None = None


@dataclass(frozen=True)
class Scenarios:
    mcs: MCSScenario = field(default_factory=MCSScenario)
    rmcs: RMCSScenario = field(default_factory=RMCSScenario)
    idr: IDRScenario = field(default_factory=IDRScenario)
    iir: IIRScenario = field(default_factory=IIRScenario)
    faithfulness: FaithfulnessScenario = field(default_factory=FaithfulnessScenario)
    stability: StabilityScenario = field(default_factory=StabilityScenario)


@dataclass(frozen=True)
class Samples:
    """Statistics (SPEC §1.5, §3.4): ``n_trials`` random subsets of ``trial_size`` pairs, bootstrap CIs."""

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
    """

    batch_size: int = 32
    sample_batch_size: int = 64
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str | None = None
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        for k in ("batch_size", "sample_batch_size", "devices", "num_nodes"):
            if getattr(self, k) < 1:
                raise ConfigError(f"execution.{k} must be >= 1, got {getattr(self, k)}")


@dataclass(frozen=True)
class Suite:
    """An evaluation suite (``evaluate/<suite>.yaml``).

    Paths ``data``, ``models``, ``patch_data`` (a second dataset file with sets the first lacks, e.g. the δ
    patches of ``bamkit delta --out``) and ``verify`` (the ``bamkit verify`` JSON) are relative to the current
    directory (they name run outputs, not configs); the CLI flags and :func:`bamkit.evaluate.run_suite`
    override them.
    """

    name: str = "suite"
    data: str | None = None
    models: str | None = None
    patch_data: str | None = None
    verify: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    methods: tuple[MethodSpec, ...] = ()
    metrics: tuple[str, ...] = ("mcs", "rmcs", "idr", "iir", "attribution_change")
    scenarios: Scenarios = field(default_factory=Scenarios)
    samples: Samples = field(default_factory=Samples)
    execution: Execution = field(default_factory=Execution)
    seed: int = 0
    smoke: bool = False
    grid_examples: int = 1

    def role_file(self, role: str) -> str:
        """The checkpoint stem (``<models>/<stem>.ckpt``) that plays ``role``."""
        return self.roles.get(role, DEFAULT_ROLES.get(role, role))

    def scenario_enabled(self, kind: str) -> bool:
        return getattr(self.scenarios, kind).enabled and any(
            METRIC_SCENARIO.get(m) == kind for m in self.metrics
        )

    def stability_protocols(self) -> tuple[str, ...]:
        """The stability protocols the listed metrics ask for, in order ("noise", "masking")."""
        if not self.scenarios.stability.enabled:
            return ()
        want = {STABILITY_PROTOCOL[m] for m in self.metrics if m in STABILITY_PROTOCOL}
        return tuple(p for p in ("noise", "masking") if p in want)

    def to_dict(self) -> dict[str, Any]:
        d = cfg.to_dict(self)
        d["methods"] = [{"name": m.name, "label": m.label, **m.params} for m in self.methods]
        return d

    def shrunk(self) -> Suite:
        """The ``smoke: true`` variant: few images per scenario, few trials, few bootstrap draws."""
        sc = self.scenarios

        def cap(s, n):
            return replace(s, max_images=min(s.max_images or n, n))

        scen = Scenarios(
            cap(sc.mcs, 16),
            cap(sc.rmcs, 8),
            cap(sc.idr, 16),
            cap(sc.iir, 8),
            cap(sc.faithfulness, 4),
            cap(sc.stability, 4),
        )
        return replace(
            self, scenarios=scen, samples=replace(self.samples, n_trials=3, trial_size=8, n_boot=100)
        )


def _parse(data: dict[str, Any], where: str) -> Suite:
    data = dict(data)
    raw_methods = data.pop("methods", [])
    if not isinstance(raw_methods, list):
        raise ConfigError(f"{where}.methods: expected a list of {{name: ..., params}}, got {raw_methods!r}")
    methods = tuple(MethodSpec.parse(m, f"{where}.methods[{i}]") for i, m in enumerate(raw_methods))
    suite = cfg.from_dict(Suite, data, where)
    return replace(suite, methods=methods)


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
    known = set(METRIC_SCENARIO)
    try:  # the metric registry is the authority where it knows a name; METRIC_SCENARIO says where it runs
        from bamkit.metrics import METRICS as _REG

        registry = _REG
    except ImportError:
        registry = None
    for name in suite.metrics:
        if name not in known:
            if registry is not None and name in registry:
                raise ConfigError(
                    f"{where}.metrics: metric {name!r} is registered but the evaluate stage does not "
                    f"run it yet; supported: {', '.join(sorted(known))}"
                )
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"{where}.metrics: unknown metric {name!r}{hint} (bamkit metrics lists all)")
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
    import math

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


SCENARIO_KINDS = ("mcs", "rmcs", "idr", "iir", "faithfulness", "stability")


def _validate_method(m: MethodSpec, where: str) -> None:
    from bamkit.evaluate.methods import build

    try:
        obj = build(m)
    except BamkitError as e:  # unknown names (registry) and bad parameters alike: one line, with the entry
        raise ConfigError(f"{where}: {e}") from None
    if getattr(obj, "output", "input") == "concept":
        raise ConfigError(
            f"{where}: {m.name!r} is a concept method (no attribution map); the evaluate stage "
            "scores map methods — run TCAV through bamkit.attribution directly"
        )


def load_suite(
    path: str | Path,
    *,
    data: str | Path | None = None,
    models: str | Path | None = None,
    methods: tuple[str, ...] | list[str] = (),
    smoke: bool | None = None,
    patch_data: str | Path | None = None,
    verify: str | Path | None = None,
) -> Suite:
    """Load ``path``, apply CLI overrides, shrink when ``smoke``, and validate.

    Args:
        methods: extra methods (``--method``): registered names or ``module:callable``; they join the suite's
            methods (a name already listed is not added twice).
    """
    suite = _parse(cfg.load_yaml(path), str(path))
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
    extra = [MethodSpec.parse(m, f"--method {m}") for m in methods]
    have = {m.label for m in suite.methods}
    over["methods"] = suite.methods + tuple(m for m in extra if m.label not in have)
    suite = replace(suite, **over)
    if suite.smoke:
        suite = suite.shrunk()
    return validate(suite, str(path))


def suite_from_dict(data: dict[str, Any], where: str = "suite") -> Suite:
    """Build and validate a suite from a mapping (tests, notebooks)."""
    suite = _parse(data, where)
    if suite.smoke:
        suite = suite.shrunk()
    return validate(suite, where)


__all__ = [
    "Suite",
    "MethodSpec",
    "Scenarios",
    "Samples",
    "Execution",
    "StabilityScenario",
    "load_suite",
    "suite_from_dict",
    "validate",
    "METRIC_SCENARIO",
    "METRIC_REDUCER",
    "HIGHER_IS_BETTER",
    "STABILITY_PROTOCOL",
]
