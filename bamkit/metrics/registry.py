"""Metric metadata (Quantus-style class attributes) and the ``METRICS`` registry behind ``bamkit metrics``.

Each entry holds the pure function that computes it, says what the metric needs, which ``to_saliency`` mode
feeds it, which way is better, which evaluation scenario produces it, how reports caption it and where it comes
from (mmengine's ``process``/``compute`` split: the evaluate stage gathers the inputs, the function computes). The
evaluate stage calls what the entry holds, so what ``bamkit metrics`` lists is what computes the leaderboard:

* pair metrics (MCS, IDR, IIR, App. C, relative MCS): ``per_pair`` gives the per-pair values of ``per_pair.csv``
  from the two members' ``column`` (``g_c``, or ``g_c_random`` for the random-region baselines); ``function``
  gives the leaderboard value (a :class:`~bamkit.metrics.functional.Score`, or relative MCS's series);
* image metrics (RCAP, DAUC, Dice, ...): ``function`` on a batch, called through :meth:`Metric.image_values`;
* stability metrics: ``function`` is the protocol of :mod:`bamkit.metrics.stability`;
* derived rows (``derived_from`` set: random-region baselines, ρ of relative MCS, stability correlations) come
  with another metric; a baseline is read, not ranked (``higher_is_better`` None).

A metric's settings are the parameters of its function named in ``params``: their defaults are the function's
own (its signature is the one place they are declared), a suite sets them per metric
(``{name: iir, t: 0.2}``), ``check`` validates them before any model runs, and ``title`` is formatted with them.
The entries are declared in :mod:`bamkit.metrics.catalogue` (imported by ``bamkit.metrics``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bamkit.errors import ConfigError
from bamkit.registry import Registry


@dataclass(frozen=True)
class ImageInputs:
    """What an image metric may read, for one batch of N images (the evaluate stage fills it).

    Attributes:
        model: the classifier; x: (N,C,S,S) normalised inputs; target: (N,) long.
        maps: ``to_saliency`` mode -> (N,S,S) 2-D maps; masks: (N,S,S) bool object masks.
        mean, std: the model's input normalisation (places black and mean fills).
        seeds: (N,) per-image seeds for stochastic metrics (results independent of batching).
        batch_size: images per forward pass of the metrics that run the model.
    """

    model: torch.nn.Module
    x: torch.Tensor
    target: torch.Tensor
    maps: Mapping[str, torch.Tensor]
    masks: torch.Tensor
    mean: Sequence[float]
    std: Sequence[float]
    seeds: Sequence[int] = ()
    batch_size: int = 64

    @property
    def norm(self) -> dict[str, tuple[float, ...]]:
        return {"mean": tuple(self.mean), "std": tuple(self.std)}

    def pixels(self) -> torch.Tensor:
        """(N,C,S,S) inputs back in [0, 1]."""
        m = torch.tensor(self.mean, dtype=self.x.dtype, device=self.x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=self.x.dtype, device=self.x.device).view(1, -1, 1, 1)
        return (self.x * s + m).clamp(0, 1)


class Metric:
    """Metadata and function of one metric. Subclasses set the class attributes and are registered by name.

    Attributes:
        name: registry name (also the name in an evaluation suite's ``metrics:``).
        title: how reports caption it; a format string over its ``params`` (``"IIR, t = {t:.0%}"``).
        scenario: the evaluation scenario that produces it (``bamkit.evaluate.scenarios``).
        higher_is_better: True / False, or None when it is read rather than ranked.
        requires: the inputs it needs, from {"saliency_bam", "saliency", "heatmap", "attributions",
            "masks", "model", "images", "pixels", "target", "pair", "correct", "explain"}.
        saliency: the ``to_saliency`` mode of its maps ("bam", "abs_minmax", "signed", "raw_flat") or None.
        per: "image" (one value per image), "pair" (per image pair) or "dataset".
        function: the pure function that computes it.
        per_pair: pair metrics: the per-pair function.
        column: pair metrics: the per-image column the two members of a pair contribute.
        params: the parameters of ``function`` a suite may set (defaults: the function's signature).
        check: validates the parameters (called with them as keywords; raises ConfigError), or None.
        protocol: stability metrics: "noise" or "masking".
        derived_from: derived summary rows: the metric they come with.
        baseline: the derived row drawn beside it in the report (a random-region baseline), or None.
        chance: the value a method at chance gets (a line in the report's bars), or None.
        paper: the source.
        note: caveats shown in listings.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    scenario: ClassVar[str]
    higher_is_better: ClassVar[bool | None]
    requires: ClassVar[frozenset[str]] = frozenset()
    saliency: ClassVar[str | None] = None
    per: ClassVar[str] = "image"
    function: ClassVar[Callable[..., Any]]
    per_pair: ClassVar[Callable[..., Any] | None] = None
    column: ClassVar[str] = "g_c"
    params: ClassVar[tuple[str, ...]] = ()
    check: ClassVar[Callable[..., Any] | None] = None
    protocol: ClassVar[str | None] = None
    derived_from: ClassVar[str | None] = None
    baseline: ClassVar[str | None] = None
    chance: ClassVar[float | None] = None
    paper: ClassVar[str] = ""
    note: ClassVar[str] = ""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``params`` with their defaults, read from ``function``'s signature."""
        sig = inspect.signature(cls.function).parameters
        return {p: sig[p].default for p in cls.params}

    @classmethod
    def settings(cls, given: Mapping[str, Any] | None = None, where: str = "") -> dict[str, Any]:
        """The parameters this metric runs with: its defaults updated by ``given``, each value checked against
        the type the function declares and then by :attr:`check`; a one-line ConfigError naming ``where``."""
        given = dict(given or {})
        where = where or f"metric {cls.name!r}"
        unknown = [k for k in given if k not in cls.params]
        if unknown:
            known = ", ".join(cls.params) or "none"
            raise ConfigError(f"{where}: metric {cls.name!r} has no parameter {unknown[0]!r}; known: {known}")
        from bamkit.config import convert

        hints = typing.get_type_hints(cls.function)
        out = cls.defaults()
        for k, v in given.items():
            out[k] = convert(v, hints.get(k, Any), f"{where}.{k}")
        if cls.check is not None and out:
            try:
                cls.check(**out)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        return out

    @classmethod
    def title_for(cls, params: Mapping[str, Any] | None = None) -> str:
        """The caption with this run's parameters filled in."""
        values = {**cls.defaults(), **dict(params or {})}
        return cls.title.format(**values) if values else cls.title

    @classmethod
    def image_values(cls, inp: ImageInputs, **params: Any) -> torch.Tensor:
        """Image metrics: (N,) values for one batch (the function called with the inputs it needs)."""
        raise TypeError(f"metric {cls.name!r} is not a per-image metric")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title_for(),
            "scenario": cls.scenario,
            "higher_is_better": cls.higher_is_better,
            "requires": sorted(cls.requires),
            "saliency": cls.saliency,
            "per": cls.per,
            "function": _qualname(cls.function),
            "per_pair": _qualname(cls.per_pair) if cls.per_pair else None,
            "derived_from": cls.derived_from,
            "params": cls.defaults(),
            "paper": cls.paper,
            "note": cls.note,
        }


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


METRICS: Registry[type[Metric]] = Registry("metric", "bamkit metrics")


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a :class:`Metric` subclass to :data:`METRICS` under its ``name``.

    Which scenarios exist is the evaluate stage's registry (a layer above this one): it checks ``scenario``
    when a suite asks for the metric."""
    for attr in ("name", "scenario", "higher_is_better", "function"):
        if not hasattr(cls, attr):
            raise TypeError(f"metric class {cls.__name__} sets no {attr!r}")
    missing = [p for p in cls.params if p not in inspect.signature(cls.function).parameters]
    if missing:
        raise TypeError(f"metric {cls.name!r}: params {missing} are not parameters of its function")
    METRICS.add(cls.name, cls)
    return cls


def scored(names: Sequence[str], scenario: str) -> tuple[str, ...]:
    """The metrics of ``names`` that ``scenario`` produces (order kept from ``names``)."""
    return tuple(n for n in names if n in METRICS and METRICS.get(n).scenario == scenario)


def of_scenario(scenario: str) -> tuple[type[Metric], ...]:
    """Every registered metric of ``scenario``, in registration order (the order of its tables)."""
    return tuple(cls for _, cls in METRICS.registered() if cls.scenario == scenario)


def direction(name: str) -> bool | None:
    """``higher_is_better`` of a registered metric or derived row; None for anything else."""
    return METRICS.get(name).higher_is_better if name in METRICS else None


def names() -> list[str]:
    """Registered metric names."""
    return METRICS.names()


def get(name: str) -> type[Metric]:
    """The metric class for ``name`` (close-name suggestions when unknown)."""
    return METRICS.get(name)
