"""A suite's method entries: :class:`MethodSpec` (what a YAML entry or a ``--method`` says) and :func:`build` (the
engine-ready :class:`~bamkit.attribution.base.Method`).

Method entries look like ``{name: integrated_gradients, label: IG, n_steps: 64}``: ``name`` is a registered
method, ``package.module:callable`` or ``./file.py:callable``; ``label`` the method's name in the tables (default: the
name, or the callable's own name); every other key a hyper-parameter (for your own function or captum class: the plug-in contract's
options ``upsample``, ``sign``, ``version`` and the arguments passed to it; docs/score-your-method.md). On the
command line ``--method LABEL=package.module:callable`` sets the label. Everything goes through
:mod:`bamkit.attribution.adapters`, so the suite, ``--method`` and the Python API accept exactly the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bamkit.errors import BamkitError, ConfigError
from bamkit.provenance import json_hash


@dataclass(frozen=True)
class MethodSpec:
    """One attribution method of a suite.

    Args:
        label: the method's name in tables and plots ("SG", "IG", ...); unique within a suite.
        name: a registered method (``bamkit methods``), ``package.module:callable`` or ``./file.py:callable``
            (a function ``f(model, inputs, target) -> Tensor``, a ``Method`` class or a captum ``Attribution``).
        params: hyper-parameters for the method's constructor.
        base: the folder a ``./file.py:callable`` is relative to (the suite file's; None: the current folder).
    """

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    base: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """Cache key of what this method computes: the name, a hash of its parameters and, for a method given as
        code (a function, a captum class), a hash of that code, so an edited method is computed afresh."""
        return method_key(self.name, json_hash(self.params), self.base)

    @classmethod
    def parse(cls, entry: Any, where: str, base: str | Path | None = None) -> MethodSpec:
        """``{name: ..., label: ..., **params}``, a bare name, or (the command line) ``LABEL=name`` or the same
        mapping written as YAML (``'{name: captum.attr:Occlusion, sliding_window_shapes: [3, 8, 8]}'``)."""
        b = None if base is None else str(base)
        if isinstance(entry, str) and entry.lstrip().startswith("{"):
            import yaml

            try:
                entry = yaml.safe_load(entry)
            except yaml.YAMLError as e:
                raise ConfigError(f"{where}: cannot read it as a YAML mapping ({e.__class__.__name__}); quote it "
                                  "whole, e.g. '{name: mod:fn, label: X, window: 8}'") from None  # fmt: skip
        if isinstance(entry, str):
            label, sep, name = entry.partition("=")
            if sep and label.strip() and name.strip() and ":" not in label:
                return cls(label=label.strip(), name=name.strip(), base=b)
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(
                f"{where}: expected {{name: <method>, ...params}} or a method name, got {entry!r}"
            )
        entry = dict(entry)
        name = entry.pop("name")
        label = entry.pop("label", None) or name.rpartition(":")[2]  # your function's own name by default
        if not isinstance(label, str):
            raise ConfigError(f"{where}.label: expected a string, got {label!r}")
        return cls(label=label, name=name, params=entry, base=b)


def method_key(name: str, params_hash: str, base: str | None) -> str:
    """``<name>-<parameter hash>`` (+ ``-<code hash>`` for code, read afresh: an edited file changes it)."""
    stem = re.sub(r"[^\w.-]", "_", Path(name.rpartition(":")[0]).name + "." + name.rpartition(":")[2]
                  if ":" in name else name)  # fmt: skip
    key = f"{stem}-{params_hash[:12]}"
    if ":" not in name:
        return key
    from bamkit.attribution.adapters import source_hash

    obj = build(MethodSpec(name, name, {}, base))
    code = obj.code_hash() if hasattr(obj, "code_hash") else source_hash(type(obj))  # a Method class of yours
    return f"{key}-{code[:12]}"


def is_concept(spec: MethodSpec) -> bool:
    """Whether ``spec`` names a concept method (TCAV: a score per concept, no map)."""
    return getattr(build(spec), "output", "input") == "concept"


def build(spec: MethodSpec):
    """The method instance for ``spec``, hyper-parameters validated against its constructor."""
    import bamkit.attribution  # noqa: F401  (registers the built-in methods)
    from bamkit.attribution import adapters

    try:
        return adapters.make(spec.name, base=None if spec.base is None else Path(spec.base), **spec.params)
    except BamkitError:
        raise
    except (TypeError, ValueError) as e:  # a constructor's own check of a value
        raise ConfigError(
            f"method {spec.label!r} ({spec.name}): invalid parameters {spec.params}: {e}"
        ) from None
