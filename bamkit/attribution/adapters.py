"""Turning whatever a user passes as ``method`` into a :class:`~bamkit.attribution.base.Method`.

Accepted: a registered name (with hyper-parameters), a ``Method`` instance, a callable
``f(model, inputs, target) -> Tensor``, a captum ``Attribution`` instance, a ``"module:callable"`` string, and
methods that third-party packages publish through the ``bamkit.attributions`` entry-point group (an entry point
names a ``Method`` subclass, registered under the entry point's name, or a plain callable).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bamkit.attribution.base import METHODS, ExecOptions, Method, validate_params
from bamkit.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bamkit.attributions"
_loaded_entry_points = False


def load_entry_points() -> None:
    """Register the methods of installed plug-ins (once; a broken plug-in is logged, not fatal)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in METHODS:
            continue
        try:
            obj = ep.load()
        except Exception as e:  # a third-party import error must not break bamkit
            log.warning("could not load attribution plug-in %r (%s): %s", ep.name, ep.value, e)
            continue
        METHODS.add(
            ep.name,
            obj if isinstance(obj, type) and issubclass(obj, Method) else _callable_class(ep.name, obj),
        )


def _fit_output(out: Any, inputs: torch.Tensor, who: str) -> torch.Tensor:
    """Check a foreign method's output and bring (N,h,w)/(N,1,h,w) maps to the input resolution."""
    if isinstance(out, tuple) and len(out) == 1:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{who} returned {type(out).__name__}; expected a tensor (N,C,H,W) or (N,1,H,W)")
    n, _, h, w = inputs.shape
    if out.ndim == 3:
        out = out[:, None]
    if out.ndim != 4 or out.shape[0] != n:
        raise ConfigError(f"{who} returned shape {tuple(out.shape)}; expected ({n},C,{h},{w}) or ({n},1,h,w)")
    if out.shape[-2:] != (h, w):
        if out.shape[1] != 1:
            raise ConfigError(
                f"{who} returned {tuple(out.shape)}: multi-channel output at another resolution "
                f"than the input ({h}×{w})"
            )
        out = F.interpolate(out.float(), size=(h, w), mode="bilinear", align_corners=False)
    return out.detach().to(inputs.device)


class CallableMethod(Method):
    """A user function ``f(model, inputs, target) -> Tensor`` as a method (run under the model guard)."""

    stochastic = False

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        if not callable(fn):
            raise ConfigError(
                f"method must be a registered name, a Method, a captum Attribution or a callable "
                f"f(model, inputs, target); got {type(fn).__name__}"
            )
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def params(self) -> dict[str, Any]:
        return {"fn": self.fn}

    def attribute(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
    ) -> torch.Tensor:
        with torch.enable_grad():
            out = self.fn(model, inputs.detach().clone(), target)
        return _fit_output(out, inputs, f"attribution callable {self.name!r}")


def _callable_class(name: str, fn: Callable) -> type[Method]:
    """A registrable Method class wrapping a plug-in callable."""

    class _Plugin(CallableMethod):
        def __init__(self) -> None:
            super().__init__(fn)
            self.name = name

    _Plugin.__name__ = _Plugin.__qualname__ = f"Plugin_{name}"
    _Plugin.paper = getattr(fn, "paper", "") or (inspect.getdoc(fn) or "").split("\n")[0]
    return _Plugin


class CaptumMethod(Method):
    """A captum ``Attribution`` instance (bound to its forward function) as a method.

    Args:
        attribution: e.g. ``captum.attr.Saliency(model)``; its ``forward_func`` should be the model passed to
            ``attribute`` (captum objects are built around their model).
        kwargs: extra keyword arguments for ``attribution.attribute`` (``n_steps``, ``baselines``, ...).
    """

    def __init__(self, attribution: Any, **kwargs: Any) -> None:
        self.attribution, self.kwargs = attribution, kwargs
        self.name = f"captum.{type(attribution).__name__}"

    def params(self) -> dict[str, Any]:
        return {"attribution": self.attribution, **self.kwargs}

    def attribute(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
    ) -> torch.Tensor:
        fwd = getattr(self.attribution, "forward_func", None)
        if isinstance(fwd, nn.Module) and fwd is not model:
            log.warning(
                "captum %s was built for another module than the model passed to attribute()",
                type(self.attribution).__name__,
            )
        with torch.enable_grad():
            out = self.attribution.attribute(
                inputs.detach().clone().requires_grad_(True), target=target, **self.kwargs
            )
        return _fit_output(out, inputs, self.name)


def _is_captum(obj: Any) -> bool:
    try:
        from captum.attr import Attribution
    except ImportError:  # captum is a dependency, but keep the adapter optional
        return False
    return isinstance(obj, Attribution)


def _import_callable(spec: str) -> Any:
    mod, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"cannot import attribution {spec!r} ({e}); expected 'package.module:callable'"
        ) from None
    return obj


def resolve(method: str | Method | Callable | Any) -> type[Method] | Method:
    """A Method class (for names) or instance (for everything else); no hyper-parameters yet."""
    if isinstance(method, Method):
        return method
    if isinstance(method, type) and issubclass(method, Method):
        return method
    if isinstance(method, str):
        if ":" in method:
            obj = _import_callable(method)
            return obj if isinstance(obj, type) and issubclass(obj, Method) else resolve(obj)
        load_entry_points()
        return METHODS.get(method)
    if _is_captum(method):
        return CaptumMethod(method)
    if callable(method):
        return CallableMethod(method)
    raise ConfigError(
        f"method must be a registered name, 'module:callable', a Method, a captum Attribution or a "
        f"callable f(model, inputs, target); got {type(method).__name__}"
    )


def make(method: str | Method | Callable | Any, /, **params: Any) -> Method:
    """A ready :class:`Method` instance; ``params`` are validated against the method's constructor first.

    ``method`` is positional-only so that wrappers can take a ``method=`` parameter (``make("reversed",
    method="smoothgrad")``).
    """
    r = resolve(method)
    if isinstance(r, type):
        validate_params(r, params)
        return r(**params)
    if isinstance(r, CaptumMethod) and params:
        return CaptumMethod(r.attribution, **params)
    if params:
        raise ConfigError(
            f"parameters {sorted(params)} cannot be applied to an instance of "
            f"{type(r).__name__}; build it with them instead"
        )
    return r
