"""Attribution methods for image classifiers behind one interface (docs/methods.md).

>>> import bamkit.attribution as A
>>> A.names()                                                   # registered methods
>>> a = A.attribute(model, x, target, "integrated_gradients", n_steps=64)     # (N,C,H,W)
>>> maps = A.attribute_many(model, x, target, ["smoothgrad", "vargrad", "guided_absolutegrad"])  # one pass
>>> sal = A.to_saliency(a, mode="bam")                          # (N,H,W) in [0, 1]

``method`` is a registered name, a :class:`Method`, a callable ``f(model, inputs, target)``, a captum
``Attribution`` instance or a ``"module:callable"`` string; plug-ins register through the ``bamkit.attributions``
entry-point group. Importing this package registers every built-in method (no other side effects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bamkit.attribution import (  # noqa: F401  (imported to register their methods)
    backprop,
    baselines,
    blur_ig,
    cam,
    gradients,
    guided_ig,
    lrp,
    tcav,
)
from bamkit.attribution.adapters import load_entry_points, make, resolve
from bamkit.attribution.base import METHODS, ExecOptions, Method, parameter_defaults
from bamkit.attribution.engine import fidelity, run_methods, samples_per_image
from bamkit.attribution.postprocess import MODES, to_saliency
from bamkit.errors import ConfigError

__all__ = [
    "ExecOptions",
    "MODES",
    "Method",
    "attribute",
    "attribute_many",
    "defaults",
    "fidelity",
    "get",
    "make",
    "names",
    "resolve",
    "samples_per_image",
    "specs",
    "to_saliency",
]

# what a caller may pass as a method: a name, a Method, a callable, a captum object or a {name: ..., ...} mapping
MethodLike = str | Method | Callable | Mapping[str, Any]


def names() -> list[str]:
    """Registered method names (built-ins and installed plug-ins), sorted."""
    load_entry_points()
    return METHODS.names()


def get(name: str) -> type[Method]:
    """The method class registered under ``name`` (suggests close names when unknown)."""
    load_entry_points()
    return METHODS.get(name)


def defaults(name: str) -> dict[str, Any]:
    """Hyper-parameters of a registered method with their defaults."""
    return {k: v for k, v in parameter_defaults(get(name)).items()}


def _opts(opts: ExecOptions | Mapping[str, Any] | None) -> ExecOptions:
    if opts is None:
        return ExecOptions()
    if isinstance(opts, ExecOptions):
        return opts
    if isinstance(opts, Mapping):
        try:
            return ExecOptions(**opts)
        except TypeError as e:
            raise ConfigError(
                f"opts: {e}; expected keys precision, channels_last, compile, fold_bn, batch_size"
            ) from None
    raise ConfigError(f"opts must be an ExecOptions or a dict, got {type(opts).__name__}")


def _label(m: Method, fallback: Any) -> str:
    return m.name or getattr(fallback, "__name__", None) or type(fallback).__name__


def specs(methods: Sequence[MethodLike] | Mapping[str, Any]) -> dict[str, Method]:
    """Normalise ``attribute_many``'s ``methods`` into result name -> Method.

    Accepted: a list of names / Methods / callables / captum objects / dicts ``{"name": ..., **params}`` (YAML),
    or a mapping result-name -> params dict (``{"ig64": {"name": "integrated_gradients", "n_steps": 64}}``,
    ``{"smoothgrad": {"n_samples": 50}}``), -> None, or -> a method.
    """
    out: dict[str, Method] = {}

    def add(key: str, m: Method) -> None:
        if key in out:
            raise ConfigError(
                f"attribute_many(): method {key!r} is requested twice; give distinct result names "
                "with a mapping {'name_a': {...}, 'name_b': {...}}"
            )
        out[key] = m

    if isinstance(methods, Mapping):
        for key, v in methods.items():
            if v is None:
                add(key, make(key))
            elif isinstance(v, Mapping):
                params = dict(v)
                add(key, make(params.pop("name", key), **params))
            else:
                add(key, make(v))
        return out
    if isinstance(methods, (str, Method)) or callable(methods):
        methods = [methods]
    for spec in methods:
        if isinstance(spec, Mapping):
            params = dict(spec)
            if "name" not in params:
                raise ConfigError(f"attribute_many(): method spec {spec!r} has no 'name'")
            name = params.pop("name")
            add(str(name), make(name, **params))
        else:
            m = make(spec)
            add(spec if isinstance(spec, str) else _label(m, spec), m)
    return out


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    method: MethodLike,
    /,
    *,
    generator: torch.Generator | None = None,
    seeds: torch.Tensor | None = None,
    opts: ExecOptions | Mapping[str, Any] | None = None,
    **params: Any,
) -> torch.Tensor:
    """Attributions of one method.

    Args:
        model: returns logits for ``inputs``; put in eval mode (weights' ``requires_grad`` off) for the call and
            restored after.
        inputs: (N,C,H,W) float in the model's input space (never modified).
        target: LongTensor (N,) of class indices (or one int).
        method: registered name, Method, callable ``f(model, inputs, target)``, captum Attribution or
            ``"module:callable"``.
        generator, seeds: randomness (``seeds`` (N,) makes every image independent of the batch it is in).
        opts: :class:`ExecOptions` (precision, channels_last, compile, batch_size) or a dict of them.
        **params: the method's hyper-parameters (``n_samples``, ``sigma``, ``n_steps``, ``baseline``, ...).
            The first four arguments are positional-only, so ``params`` may contain ``method=`` (``reversed``).

    Returns:
        (N,C,H,W) for input attributions, (N,1,H,W) for maps, on the inputs' device.
    """
    m = make(method, **params)
    return run_methods(model, inputs, target, {"m": m}, generator=generator, seeds=seeds, opts=_opts(opts))[
        "m"
    ]


def attribute_many(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    methods: Sequence[MethodLike] | Mapping[str, Any],
    *,
    generator: torch.Generator | None = None,
    seeds: torch.Tensor | None = None,
    opts: ExecOptions | Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Several methods on one batch; methods that share samples (same sampler and parameters) cost one pass.

    The result of each method equals ``attribute`` of that method alone with the same seeds.
    """
    return run_methods(
        model, inputs, target, specs(methods), generator=generator, seeds=seeds, opts=_opts(opts)
    )
