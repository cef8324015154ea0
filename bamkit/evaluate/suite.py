"""Evaluation suites: which data, models, methods, metrics, scenarios and sample sizes (frozen dataclasses).

A suite YAML is one instance of :class:`Suite`; :mod:`bamkit.evaluate.validate` checks everything (method names
and hyper-parameters against the attribution registry, metric names against the metric registry) before any
model runs, so a typo fails in a second instead of after an hour of attributions. Which scenario produces a
metric, its 2-D reducer and its direction are the metric registry's (:mod:`bamkit.metrics.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from bamkit import config as cfg
from bamkit.errors import ConfigError
from bamkit.evaluate.methods import MethodSpec, is_concept
from bamkit.metrics.registry import METRICS, SCENARIOS
from bamkit.metrics.stability import LEVELS

K_VALUES = tuple(f"{k / 10:.1f}" for k in range(1, 11))
DEFAULT_ROLES = {"f_o": "f_o", "f_s": "f_s", "f_empty": "f_empty", **{f"f_k{k}": f"f_k{k}" for k in K_VALUES}}

SCENARIO_KINDS = SCENARIOS


@dataclass(frozen=True)
class _Scenario:
    """What every scenario has: a switch, the rows it reads (``split``) and an optional seeded subset size."""

    enabled: bool = True
    split: Literal["val", "train", "all"] = "val"
    max_images: int | None = None


@dataclass(frozen=True)
class MCSScenario(_Scenario):
    """MCS (BAM §4.2): f_o vs f_s on the same X_{o,s} images, object masks, random-region baseline."""

    models: tuple[str, str] = ("f_o", "f_s")
    set: str = "obj_scene"
    random_baseline: bool = True


@dataclass(frozen=True)
class RMCSScenario(_Scenario):
    """Relative MCS (BAM §4.2, Fig. 6/13): each f_k vs the reference model on ``set``; Pearson ρ vs acc. drop.

    ``set``: BAM's code uses ``dog_bedroom``; ``dog_bamboo_forest`` holds the images whose accuracy drop the ρ is
    taken against (the demo suite's choice, see evaluate/demo.yaml)."""

    split: Literal["val", "train", "all"] = "all"
    models: tuple[str, ...] = tuple(f"f_k{k}" for k in K_VALUES[:-1])
    reference: str = "f_k1.0"
    set: str = "dog_bedroom"


@dataclass(frozen=True)
class IDRScenario(_Scenario):
    """IDR (BAM §4.3): f_s on X_{o,s} vs the paired X_{∅,s} image, object region, random-region baseline."""

    model: str = "f_s"
    set: str = "obj_scene"
    paired_set: str = "scene_only"
    random_baseline: bool = True


@dataclass(frozen=True)
class IIRScenario(_Scenario):
    """IIR (BAM §4.4) and App. C's relative change: f_empty on bamboo_forest vs bamboo_forest_patch (x + δ)."""

    split: Literal["val", "train", "all"] = "all"
    model: str = "f_empty"
    set: str = "bamboo_forest"
    paired_set: str = "bamboo_forest_patch"
    t: float = 0.1


@dataclass(frozen=True)
class FaithfulnessScenario(_Scenario):
    """The seeds' per-image metrics (RCAP, DAUC/IAUC, Dice/MAE vs object masks, ...) on one model and set."""

    max_images: int | None = 64
    model: str = "f_o"
    set: str = "obj_scene"
    lower_bound: int = 50
    interval: int = 10
    auc_protocol: Literal["gag10", "rise"] = "gag10"


@dataclass(frozen=True)
class StabilityScenario(_Scenario):
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

    max_images: int | None = 50
    model: str = "f_o"
    set: str = "obj_scene"
    epsilons: tuple[float, ...] = LEVELS
    ratios: tuple[float, ...] = LEVELS
    variant: Literal["b", "c"] = "b"
    max_n: int | None = None
    fill: Literal["mean", "black"] = "mean"
    correct_only: bool = False
    batch_size: int | None = None


@dataclass(frozen=True)
class ConceptScenario(_Scenario):
    """Concept methods (TCAV, BAM App. F–G; SPEC §2.16) in MCS and relative MCS: TCAV(f_o, dog) − TCAV(f_s,
    bedroom) on ``target_set`` images, and TCAV(f_k) − TCAV(f_1.0) over the k-models; the models are the MCS
    and relative-MCS scenarios'.

    Args:
        target_set, split, max_images: the target images (BAM: ``dog_bedroom``, 100 images).
        concept_set, concept_split, n_concept: the concept examples: images of ``concept_set`` that show the
            common feature (BAM: 100 ``X_{o,s}`` images whose object is a dog).
        random_set, n_random: the random sets (BAM: ``X_{∅,s}`` images), ``n_random`` images each; the method's
            ``num_random`` negatives plus one counterpart are drawn, disjoint, with the suite's seed.
    """

    split: Literal["val", "train", "all"] = "all"
    max_images: int | None = 100
    target_set: str = "dog_bedroom"
    concept_set: str = "obj_scene"
    concept_split: Literal["val", "train", "all"] = "val"
    n_concept: int = 100
    random_set: str = "scene_only"
    n_random: int = 100


@dataclass(frozen=True)
class Scenarios:
    mcs: MCSScenario = field(default_factory=MCSScenario)
    rmcs: RMCSScenario = field(default_factory=RMCSScenario)
    idr: IDRScenario = field(default_factory=IDRScenario)
    iir: IIRScenario = field(default_factory=IIRScenario)
    faithfulness: FaithfulnessScenario = field(default_factory=FaithfulnessScenario)
    stability: StabilityScenario = field(default_factory=StabilityScenario)
    concept: ConceptScenario = field(default_factory=ConceptScenario)


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

    ``precision``, ``channels_last`` and ``compile`` default to ``auto``: the fast path (bf16, channels_last,
    ``torch.compile``) on a CUDA device, fp32 eager elsewhere (:meth:`resolved`); the run records what it used
    and, off fp32, the maps' rank fidelity against fp32 per method. ``precision: fp32`` (with ``compile: false``,
    ``channels_last: false``) is the exact path on any device.
    """

    batch_size: int = 32
    sample_batch_size: int = 64
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = "auto"
    device: str | None = None
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        for k in ("batch_size", "sample_batch_size", "devices", "num_nodes"):
            if getattr(self, k) < 1:
                raise ConfigError(f"execution.{k} must be >= 1, got {getattr(self, k)}")

    def resolved(self, device: str | torch.device) -> dict[str, Any]:
        """``precision``, ``channels_last``, ``compile`` with ``auto`` decided for ``device``: the fast path on
        CUDA (bf16 autocast, NHWC, compiled), fp32 eager on the CPU (where bf16 is slower and compile gains
        nothing measurable for these models)."""
        cuda = torch.device(device).type == "cuda"
        return {
            "precision": ("bf16" if cuda else "fp32") if self.precision == "auto" else self.precision,
            "channels_last": cuda if self.channels_last == "auto" else bool(self.channels_last),
            "compile": cuda if self.compile == "auto" else bool(self.compile),
        }


@dataclass(frozen=True)
class Suite:
    """An evaluation suite (``evaluate/<suite>.yaml``).

    Paths ``data``, ``models``, ``patch_data`` (a second dataset file with sets the first lacks, e.g. the δ
    patches of ``bamkit delta --out``) and ``verify`` (the ``bamkit verify`` JSON) are relative to the current
    directory (they name run outputs, not configs); the CLI flags and :func:`bamkit.evaluate.run_suite`
    override them. A metric the suite asks for whose models or sets are absent is an error naming what is
    missing, unless ``allow_missing`` (``--allow-missing``) says to skip it.
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
    allow_missing: bool = False  # a scenario whose models or sets are absent is skipped instead of an error

    def role_file(self, role: str) -> str:
        """The checkpoint stem (``<models>/<stem>.ckpt``) that plays ``role``."""
        return self.roles.get(role, DEFAULT_ROLES.get(role, role))

    def concept_methods(self) -> tuple[MethodSpec, ...]:
        """The suite's concept methods (TCAV): scored in MCS / relative MCS from concept sets, not maps."""
        return tuple(m for m in self.methods if is_concept(m))

    def map_methods(self) -> tuple[MethodSpec, ...]:
        """The suite's map methods (everything that makes a per-pixel attribution)."""
        return tuple(m for m in self.methods if not is_concept(m))

    def metrics_of(self, kind: str) -> tuple[str, ...]:
        """The listed metrics that scenario ``kind`` produces (the registry says which)."""
        return tuple(m for m in self.metrics if m in METRICS and METRICS.get(m).scenario == kind)

    def scenario_enabled(self, kind: str) -> bool:
        return getattr(self.scenarios, kind).enabled and bool(self.metrics_of(kind))

    def reducers(self, kind: str) -> tuple[str, ...]:
        """The ``to_saliency`` modes the metrics of scenario ``kind`` read (sorted)."""
        return tuple(sorted({r for m in self.metrics_of(kind) if (r := METRICS.get(m).reducer) is not None}))

    def stability_protocols(self) -> tuple[str, ...]:
        """The stability protocols the listed metrics ask for, in order ("noise", "masking")."""
        if not self.scenarios.stability.enabled:
            return ()
        want = {METRICS.get(m).protocol for m in self.metrics_of("stability")}
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
            replace(
                cap(sc.concept, 8),
                n_concept=min(sc.concept.n_concept, 8),
                n_random=min(sc.concept.n_random, 8),
            ),
        )
        return replace(
            self, scenarios=scen, samples=replace(self.samples, n_trials=3, trial_size=8, n_boot=100)
        )


def parse(data: dict[str, Any], where: str) -> Suite:
    """A :class:`Suite` from a parsed YAML mapping (types checked; see :func:`~bamkit.evaluate.validate.validate`)."""
    data = dict(data)
    raw_methods = data.pop("methods", [])
    if not isinstance(raw_methods, list):
        raise ConfigError(f"{where}.methods: expected a list of {{name: ..., params}}, got {raw_methods!r}")
    methods = tuple(MethodSpec.parse(m, f"{where}.methods[{i}]") for i, m in enumerate(raw_methods))
    suite = cfg.from_dict(Suite, data, where)
    return replace(suite, methods=methods)


__all__ = [
    "Suite",
    "MethodSpec",
    "Scenarios",
    "Samples",
    "Execution",
    "StabilityScenario",
    "parse",
    "K_VALUES",
    "SCENARIO_KINDS",
]
