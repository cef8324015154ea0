"""Turning a suite's method entries into engine-ready :class:`~bamkit.attribution.base.Method` instances.

Registered names, ``module:callable`` strings (a function ``f(model, inputs, target)``, a Method class or a
captum ``Attribution``) and entry-point plug-ins all go through :mod:`bamkit.attribution.adapters`, so the
suite, ``--method`` and the Python API accept exactly the same things.
"""

from __future__ import annotations

from bamkit.attribution.base import Method
from bamkit.errors import BamkitError, ConfigError
from bamkit.evaluate.suite import MethodSpec


def build(spec: MethodSpec) -> Method:
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
