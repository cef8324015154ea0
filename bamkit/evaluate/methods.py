"""A suite's method entries: :class:`MethodSpec` (what a YAML entry says) and :func:`build` (the engine-ready
:class:`~bamkit.attribution.base.Method`).

Method entries look like ``{name: integrated_gradients, label: IG, n_steps: 64}`` — ``name`` is a
registered method or ``module:callable``, ``label`` the column name in tables (default: ``name``), every other
key a hyper-parameter of the method's constructor. Registered names, ``module:callable`` strings (a function
``f(model, inputs, target)``, a Method class or a captum ``Attribution``) and entry-point plug-ins all go through
:mod:`bamkit.attribution.adapters`, so the suite, ``--method`` and the Python API accept exactly the same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bamkit.errors import BamkitError, ConfigError
from bamkit.provenance import json_hash


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


def is_concept(spec: MethodSpec) -> bool:
    """Whether ``spec`` names a concept method (TCAV: a score per concept, no map)."""
    return getattr(build(spec), "output", "input") == "concept"


def build(spec: MethodSpec):
    """The method instance for ``spec``, hyper-parameters validated against its constructor."""
    import bamkit.attribution  # noqa: F401  (registers the built-in methods)
    from bamkit.attribution import adapters

    try:
        return adapters.make(spec.name, **spec.params)
    except BamkitError:
        raise
    except (TypeError, ValueError) as e:  # a constructor's own check of a value
        raise ConfigError(
            f"method {spec.label!r} ({spec.name}): invalid parameters {spec.params}: {e}"
        ) from None
