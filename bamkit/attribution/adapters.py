"""Turning whatever a user passes as ``method`` into a :class:`~bamkit.attribution.base.Method`.

Accepted: a registered name (with hyper-parameters), a ``Method`` instance or class, a function
``f(model, inputs, target) -> Tensor``, a captum ``Attribution`` (an instance, or a class that is built around
each model it is given), a ``"module:callable"`` or ``"./file.py:callable"`` string naming any of these, and
methods third-party packages publish through the ``bamkit.attributions`` entry-point group.

A foreign method (a function or a captum object) meets the plug-in contract of docs/score-your-method.md, checked
on every call: it returns a tensor of shape (N,C,H,W) or (N,1,H,W) or (N,H,W) at the input's resolution, or a
lower-resolution map only when its entry says how to bring it up (``upsample: bilinear`` or ``nearest``). Its
entry may also say ``sign`` (what the BAM maps read: the ``positive`` part, as BAM's code, the ``absolute``
value, or the ``negative`` part) and a ``version`` that changes its cache key; every other key is passed to the
function (or to captum's ``attribute``). Its cache key follows its code (:meth:`ForeignMethod.code_hash`).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bamkit.attribution.base import METHODS, ExecOptions, Method, validate_params
from bamkit.errors import ConfigError
from bamkit.imports import import_object

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bamkit.attributions"
UPSAMPLE = ("bilinear", "nearest")
SIGNS = ("positive", "absolute", "negative")
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


def fit_output(out: Any, inputs: torch.Tensor, who: str, upsample: str | None = None) -> torch.Tensor:
    """The plug-in contract: ``out`` as (N,C,H,W) at the input's resolution, or a ConfigError naming ``who`` and
    the shape expected. Accepted: (N,C,H,W) and (N,1,H,W) at the input's size, (N,H,W) (a map), and a map at a
    lower resolution only with ``upsample`` (``bilinear`` | ``nearest``)."""
    if isinstance(out, tuple) and len(out) == 1:
        out = out[0]
    n, c, h, w = inputs.shape
    expected = f"expected ({n},{c},{h},{w}), ({n},1,{h},{w}) or ({n},{h},{w})"
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{who} returned {type(out).__name__}; {expected}, a tensor")
    if out.ndim == 3:
        out = out[:, None]
    if out.ndim != 4 or out.shape[0] != n:
        raise ConfigError(f"{who} returned shape {tuple(out.shape)}; {expected}, one row per input image")
    if not out.is_floating_point():
        raise ConfigError(f"{who} returned a {out.dtype} tensor; {expected} of floats")
    if out.shape[-2:] != (h, w):
        if tuple(out.shape[1:3]) == (h, w) and out.shape[3] in (1, c):  # (N,H,W,C): the layout, not the size
            raise ConfigError(
                f"{who} returned shape {tuple(out.shape)}, channels last; {expected}: return it as "
                "out.permute(0, 3, 1, 2)"
            )
        if out.shape[1] != 1 or upsample is None:
            raise ConfigError(
                f"{who} returned shape {tuple(out.shape)} at another resolution than the input's {h}×{w}; "
                f"{expected}, or set 'upsample: bilinear' (or nearest) in its entry to score a (N,1,h,w) map"
            )
        mode = {"bilinear": {"mode": "bilinear", "align_corners": False}, "nearest": {"mode": "nearest"}}
        out = F.interpolate(out, size=(h, w), **mode[upsample])
    elif out.shape[1] not in (1, c):
        raise ConfigError(f"{who} returned {out.shape[1]} channels; {expected}")
    return out.detach().to(inputs.device)


class ForeignMethod(Method):
    """A method bamkit did not write (a function or a captum object), with the plug-in contract's options.

    Args:
        upsample: how a (N,1,h,w) map at a lower resolution is brought to the input's (None: an error).
        sign: what the BAM maps read: ``positive`` (BAM's code keeps the positive part), ``absolute`` or
            ``negative``.
        version: any value; changes the cache key (compute again after a change the code hash cannot see).
        kwargs: passed to the function, or to captum's ``attribute``.
    """

    name = "foreign"

    def __init__(
        self, upsample: str | None = None, sign: str = "positive", version: Any = None, **kwargs: Any
    ):
        if upsample not in (None, *UPSAMPLE):
            raise ConfigError(f"upsample {upsample!r} is not one of {', '.join(UPSAMPLE)} (or unset)")
        if sign not in SIGNS:
            raise ConfigError(f"sign {sign!r} is not one of {', '.join(SIGNS)}")
        self.upsample, self.sign, self.version, self.kwargs = upsample, sign, version, kwargs

    def finish(self, out: Any, inputs: torch.Tensor) -> torch.Tensor:
        a = fit_output(out, inputs, self.name, self.upsample)
        return a.abs() if self.sign == "absolute" else -a if self.sign == "negative" else a

    def options(self) -> dict[str, Any]:
        """The contract options and arguments, for cache keys and the results' record."""
        return {"upsample": self.upsample, "sign": self.sign, "version": self.version, **self.kwargs}

    def code_hash(self) -> str:
        """A hash of the code that computes this method (what makes an edited method's maps fresh)."""
        raise NotImplementedError


def source_hash(*objs: Any) -> str:
    """sha256 over each object's source and its module file's bytes (what ``import`` would run)."""
    h = hashlib.sha256()
    for obj in objs:
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):  # built-ins, C extensions, lambdas typed at a prompt
            h.update(repr(getattr(obj, "__qualname__", obj)).encode())
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        path = getattr(module, "__file__", None)
        if path and Path(path).is_file():
            h.update(Path(path).read_bytes())
    return h.hexdigest()


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` declares a parameter ``name`` (a ``**kwargs`` catch-all does not count: it is not asking)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class CallableMethod(ForeignMethod):
    """A user function ``f(model, inputs, target, **kwargs) -> Tensor`` as a method (run under the model guard).

    A function that takes ``seeds`` receives one seed per image (LongTensor (N,)), so that a stochastic method's
    map depends on the image, not on the batch it falls in; one that takes ``generator`` gets a generator seeded
    from the first image's seed."""

    def __init__(self, fn: Callable[..., torch.Tensor], **options: Any) -> None:
        if not callable(fn):
            raise ConfigError(
                f"method must be a registered name, a Method, a captum Attribution or a callable "
                f"f(model, inputs, target); got {type(fn).__name__}"
            )
        super().__init__(**options)
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self.stochastic = _accepts(fn, "seeds") or _accepts(fn, "generator")

    def params(self) -> dict[str, Any]:
        return {"fn": self.fn, **self.options()}

    def code_hash(self) -> str:
        return source_hash(self.fn)

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
        from bamkit.attribution.engine import resolve_seeds

        extra = dict(self.kwargs)
        if self.stochastic:
            s = resolve_seeds(inputs.shape[0], generator, seeds)
            if _accepts(self.fn, "seeds"):
                extra["seeds"] = s
            else:
                extra["generator"] = torch.Generator(device=inputs.device).manual_seed(
                    int(s[0]) if len(s) else 0
                )
        with torch.enable_grad():
            out = self.fn(model, inputs.detach().clone(), target, **extra)
        return self.finish(out, inputs)


def _callable_class(name: str, fn: Callable) -> type[Method]:
    """A registrable Method class wrapping a plug-in callable."""

    class _Plugin(CallableMethod):
        def __init__(self, **options: Any) -> None:
            super().__init__(fn, **options)
            self.name = name

    _Plugin.__name__ = _Plugin.__qualname__ = f"Plugin_{name}"
    _Plugin.paper = getattr(fn, "paper", "") or (inspect.getdoc(fn) or "").split("\n")[0]
    return _Plugin


class CaptumMethod(ForeignMethod):
    """A captum ``Attribution`` as a method.

    Args:
        attribution: an instance (bound to its model), or a class, built as ``cls(model, **init)`` around each
            model ``attribute`` is given (so one entry serves f_o, f_s and every other model).
        init: keyword arguments for the class's constructor.
        kwargs: keyword arguments for ``attribute`` (``n_steps``, ``sliding_window_shapes``, ...); lists become
            tuples, as captum wants shapes.
    """

    def __init__(self, attribution: Any, init: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.attribution, self.init = attribution, dict(init or {})
        self.kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in self.kwargs.items()}
        cls = attribution if isinstance(attribution, type) else type(attribution)
        self.name = f"captum.{cls.__name__}"
        self._built: dict[int, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"attribution": self.attribution, "init": self.init, **self.options()}

    def code_hash(self) -> str:
        cls = self.attribution if isinstance(self.attribution, type) else type(self.attribution)
        return source_hash(cls) + repr(sorted(self.init.items()))

    def _for(self, model: nn.Module) -> Any:
        if not isinstance(self.attribution, type):
            fwd = getattr(self.attribution, "forward_func", None)
            if isinstance(fwd, nn.Module) and fwd is not model:
                log.warning("captum %s was built for another module than the model passed to attribute()",
                            type(self.attribution).__name__)  # fmt: skip
            return self.attribution
        key = id(model)
        if key not in self._built:  # one captum object per model, reused over its batches
            try:
                self._built[key] = self.attribution(model, **self.init)
            except TypeError as e:
                raise ConfigError(
                    f"{self.name}: cannot build it around the model ({e}); check its 'init'"
                ) from None
        return self._built[key]

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
            out = self._for(model).attribute(
                inputs.detach().clone().requires_grad_(True), target=target, **self.kwargs
            )
        return self.finish(out, inputs)


def _is_captum(obj: Any) -> bool:
    try:
        from captum.attr import Attribution
    except ImportError:  # captum is a dependency, but keep the adapter optional
        return False
    return isinstance(obj, Attribution) or (isinstance(obj, type) and issubclass(obj, Attribution))


def import_callable(spec: str, base: Path | None = None) -> Any:
    """The object ``"package.module:name"`` or ``"./file.py:name"`` names (:func:`bamkit.imports.import_object`)."""
    return import_object(spec, f"method {spec!r}", base)


def resolve(method: str | Method | Callable | Any, base: Path | None = None) -> type[Method] | Method | Any:
    """A Method class (for names and classes), a Method instance, or the foreign object to wrap."""
    if isinstance(method, Method):
        return method
    if isinstance(method, type) and issubclass(method, Method):
        return method
    if isinstance(method, str):
        if ":" in method:
            return resolve(import_callable(method, base), base)
        load_entry_points()
        return METHODS.get(method)
    if _is_captum(method) or callable(method):
        return method
    raise ConfigError(
        f"method must be a registered name, 'module:callable', a Method, a captum Attribution or a "
        f"callable f(model, inputs, target); got {type(method).__name__}"
    )


def make(method: str | Method | Callable | Any, /, *, base: Path | None = None, **params: Any) -> Method:
    """A ready :class:`Method` instance; ``params`` are validated against the method's constructor first (for a
    foreign method: its contract options and the arguments passed to it).

    ``method`` is positional-only so that wrappers can take a ``method=`` parameter (``make("reversed",
    method="smoothgrad")``); ``base`` is the folder a ``./file.py:callable`` is relative to.
    """
    r = resolve(method, base)
    if isinstance(r, type) and issubclass(r, Method):
        validate_params(r, params)
        return r(**params)
    if isinstance(r, Method):
        if params:
            raise ConfigError(
                f"parameters {sorted(params)} cannot be applied to an instance of "
                f"{type(r).__name__}; build it with them instead"
            )
        return r
    if _is_captum(r):
        return CaptumMethod(r, **params)
    return CallableMethod(r, **params)
