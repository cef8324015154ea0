"""Metric metadata (Quantus-style class attributes) and the ``METRICS`` registry behind ``bamkit metrics``.

Each entry says what the metric needs, which ``to_saliency`` reducer feeds it, which way is better, which
evaluation scenario produces it, its title in reports and where it comes from; the maths stays in the pure
functions it names (mmengine's ``process``/``compute`` split: the evaluate stage gathers the inputs, the function
computes). The evaluate stage looks every function up here at run time (:meth:`Metric.resolve`), so what the
registry names is what computes the leaderboard:

* pair metrics (MCS, IDR, IIR, App. C, relative MCS): ``per_pair`` gives the per-pair values of ``per_pair.csv``;
  ``function`` (a :class:`~bamkit.metrics.functional.Score`, or :func:`~bamkit.metrics.bam.rmcs_series`) gives
  the leaderboard value;
* image metrics (RCAP, DAUC, Dice, ...): ``function`` on a batch, called through :meth:`Metric.image_values`;
* stability metrics: ``function`` is the protocol of :mod:`bamkit.metrics.stability`;
* derived rows (``derived_from`` set: random-region baselines, ρ of relative MCS, stability correlations) are
  summary rows of another metric's scenario; a baseline is read, not ranked (``higher_is_better`` None).

The entries themselves are declared in :mod:`bamkit.metrics.catalogue` (imported by ``bamkit.metrics``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bamkit.registry import Registry

SCENARIOS = ("mcs", "rmcs", "idr", "iir", "faithfulness", "stability")


@dataclass(frozen=True)
class ImageInputs:
    """What an image metric may read, for one batch of N images (the evaluate stage fills it).

    Attributes:
        model: the classifier; x: (N,C,S,S) normalised inputs; target: (N,) long.
        maps: reducer -> (N,S,S) 2-D maps; masks: (N,S,S) bool object masks.
        mean, std: the model's input normalisation (places black and mean fills).
        seeds: (N,) per-image seeds for stochastic metrics (results independent of batching).
        params: scenario settings (``lower_bound``, ``interval``, ``auc_protocol``, ``batch_size``).
    """

    model: torch.nn.Module
    x: torch.Tensor
    target: torch.Tensor
    maps: Mapping[str, torch.Tensor]
    masks: torch.Tensor
    mean: Sequence[float]
    std: Sequence[float]
    seeds: Sequence[int] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def norm(self) -> dict[str, tuple[float, ...]]:
        return {"mean": tuple(self.mean), "std": tuple(self.std)}

    def pixels(self) -> torch.Tensor:
        """(N,C,S,S) inputs back in [0, 1]."""
        m = torch.tensor(self.mean, dtype=self.x.dtype, device=self.x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=self.x.dtype, device=self.x.device).view(1, -1, 1, 1)
        return (self.x * s + m).clamp(0, 1)


class Metric:
    """Metadata of one metric. Subclasses set the class attributes and are registered by name.

    Attributes:
        name: registry name (also the name in an evaluation suite's ``metrics:``).
        title: how reports caption it.
        scenario: the evaluation scenario that produces it (one of :data:`SCENARIOS`).
        higher_is_better: True / False, or None when it is read rather than ranked.
        requires: the inputs it needs, from {"saliency_bam", "saliency", "heatmap", "attributions",
            "masks", "model", "images", "pixels", "target", "pair", "correct", "explain"}.
        reducer: the ``to_saliency`` mode of its maps ("bam", "abs_minmax", "signed", "raw_flat") or None.
        per: "image" (one value per image), "pair" (per image pair) or "dataset".
        function: dotted path of the pure function in ``bamkit.metrics`` that computes it.
        per_pair: pair metrics: dotted path of the per-pair function.
        protocol: stability metrics: "noise" or "masking".
        derived_from: derived summary rows: the metric whose scenario produces them.
        defaults: the paper's parameter defaults.
        paper: the source.
        note: caveats shown in listings.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    scenario: ClassVar[str]
    higher_is_better: ClassVar[bool | None]
    requires: ClassVar[frozenset[str]] = frozenset()
    reducer: ClassVar[str | None] = None
    per: ClassVar[str] = "image"
    function: ClassVar[str]
    per_pair: ClassVar[str | None] = None
    protocol: ClassVar[str | None] = None
    derived_from: ClassVar[str | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    paper: ClassVar[str] = ""
    note: ClassVar[str] = ""

    @staticmethod
    def _lookup(path: str) -> Callable[..., Any]:
        mod, _, attr = path.rpartition(".")
        return getattr(importlib.import_module(mod), attr)

    @classmethod
    def resolve(cls) -> Callable[..., Any]:
        """The pure function that computes this metric (looked up now, so a wrapped function is seen)."""
        return cls._lookup(cls.function)

    @classmethod
    def resolve_per_pair(cls) -> Callable[..., Any]:
        """The per-pair function of a pair metric."""
        if cls.per_pair is None:
            raise TypeError(f"metric {cls.name!r} has no per-pair function")
        return cls._lookup(cls.per_pair)

    @classmethod
    def image_values(cls, inp: ImageInputs) -> torch.Tensor:
        """Image metrics: (N,) values for one batch (the function called with the inputs it needs)."""
        raise TypeError(f"metric {cls.name!r} is not a per-image metric")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title,
            "scenario": cls.scenario,
            "higher_is_better": cls.higher_is_better,
            "requires": sorted(cls.requires),
            "reducer": cls.reducer,
            "per": cls.per,
            "function": cls.function,
            "per_pair": cls.per_pair,
            "derived_from": cls.derived_from,
            "defaults": dict(cls.defaults),
            "paper": cls.paper,
            "note": cls.note,
        }


METRICS: Registry[type[Metric]] = Registry("metric", "bamkit metrics")


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a :class:`Metric` subclass to :data:`METRICS` under its ``name``."""
    if cls.scenario not in SCENARIOS:
        raise ValueError(f"metric {cls.name!r}: scenario {cls.scenario!r} is not one of {SCENARIOS}")
    METRICS.add(cls.name, cls)
    return cls


def scored(names: Sequence[str], scenario: str) -> tuple[str, ...]:
    """The metrics of ``names`` that ``scenario`` produces (registry order kept from ``names``)."""
    return tuple(n for n in names if n in METRICS and METRICS.get(n).scenario == scenario)


def direction(name: str) -> bool | None:
    """``higher_is_better`` of a registered metric or derived row; None for anything else."""
    return METRICS.get(name).higher_is_better if name in METRICS else None


def names() -> list[str]:
    """Registered metric names."""
    return METRICS.names()


def get(name: str) -> type[Metric]:
    """The metric class for ``name`` (close-name suggestions when unknown)."""
    return METRICS.get(name)
