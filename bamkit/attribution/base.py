"""The attribution plug-in contract: methods, kernels, execution options and the method registry.

Hyper-parameters belong to a method's constructor; data goes in the call (captum's uniform signature, zennit's
constructors). Most gradient methods are a *kernel* (what is computed for one input: the input gradient, the
guided-backprop gradient, a GradCAM map) evaluated on the inputs a *sampler* draws (noise, a path, pixel dropping)
and reduced by a *reducer* (mean, mean of squares, variance, ...); see ``engine.py``. Methods that do not fit
implement :meth:`Method.attribute` directly.
"""

from __future__ import annotations

import contextlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from bamkit.errors import ConfigError
from bamkit.registry import Registry

KernelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ExecOptions:
    """How the forward/backward passes run. Numerics other than fp32 are opt-in (fidelity: ``bench/``).

    Args:
        precision: ``fp32``; ``tf32`` (TF32 matmuls/convs on Ampere+); ``bf16`` (autocast to bfloat16;
            gradients w.r.t. the input stay float32).
        channels_last: run the model in NHWC memory format (faster convolutions on GPU).
        compile: ``torch.compile`` the forward + input-gradient step (cached per model, kernel and shape).
        fold_bn: run a copy of the model with each BatchNorm folded into the convolution before it
            (:mod:`bamkit.attribution.fold`): the same function up to rounding, faster passes.
        batch_size: largest number of samples in one forward/backward (bounds memory whatever ``n_samples`` is).
    """

    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    fold_bn: bool = False
    batch_size: int = 64

    def __post_init__(self) -> None:
        from bamkit.config import check_choices

        check_choices(self, "execution option")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")


class Kernel(ABC):
    """A per-sample attribution: ``fn(x (B,C,H,W), target (B,)) -> (B,C',H,W)`` for one model.

    ``bind`` prepares the model for the duration of a ``with`` block (swapping ReLUs, registering hooks) and
    must undo everything on exit, also after an exception. Kernels with equal :meth:`key` compute the same
    thing, so the engine evaluates each (kernel, sampler) combination once for all methods that share it.
    """

    @abstractmethod
    def key(self) -> Hashable:
        """Identity of what the kernel computes (class name + hyper-parameters)."""

    @abstractmethod
    def bind(self, model: nn.Module, opts: ExecOptions) -> contextlib.AbstractContextManager[KernelFn]:
        """Context manager yielding the kernel function for ``model``."""


class Method(ABC):
    """Base class of registered attribution methods.

    Subclasses set ``name`` (via :func:`register`), ``paper`` (citation), ``output`` and implement
    :meth:`attribute`; engine-backed methods derive from ``engine.SampledMethod`` instead.

    Attributes:
        output: ``"input"`` for (N,C,H,W) attributions, ``"map"`` for (N,1,H,W) maps (GradCAM, random).
        stochastic: whether the result depends on ``generator``.
        reference: input-independent by construction (the random map): a chance-level reference that
            leaderboards show beside the methods but never rank (a random map's region mean barely moves under
            any input change, so it would "win" IIR and the stability metrics by construction).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    output: ClassVar[str] = "input"
    stochastic: ClassVar[bool] = False
    reference: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        if params:
            raise ConfigError(f"attribution {self.name!r} takes no parameter {next(iter(params))!r}")

    @abstractmethod
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
        """Attributions for ``inputs`` (N,C,H,W) towards ``target`` (N,) at input resolution.

        Randomness contract (stochastic methods): ``seeds`` (LongTensor (N,)) gives image ``j`` its own
        ``torch.Generator`` seeded with ``seeds[j]`` on the inputs' device, so a batch gives exactly the maps of
        its images one by one with the same seeds; with only ``generator``, one seed per image is drawn from it in
        order; with neither, the seeds are drawn from a generator seeded with 0 (always reproducible). Use
        ``engine.image_generators`` / ``engine.resolve_seeds`` rather than re-implementing this.
        """

    def check(self) -> None:
        """Validate (and normalise) the hyper-parameters stored on ``self``; called by the constructors that
        :func:`hyper_parameters` generates, so a bad value fails before any model runs."""
        return None  # nothing to check by default

    def params(self) -> dict[str, Any]:
        """The hyper-parameters this instance was built with (for cache keys and reports)."""
        return {k: getattr(self, k) for k in parameter_defaults(type(self)) if hasattr(self, k)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


METHODS: Registry[type[Method]] = Registry("attribution", "bamkit methods")


def register(name: str, paper: str = "") -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register an attribution method under ``name``."""

    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        if paper:
            cls.paper = paper
        METHODS.add(name, cls)
        return cls

    return deco


def hyper_parameters(**defaults: Any) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: give a method the constructor ``__init__(self, <name>=<default>, ...)`` for exactly these
    hyper-parameters (in this order, positionally or by keyword). The constructor stores each value as an
    attribute (``mean``/``std`` as tuples of floats) and calls :meth:`Method.check`; its signature is the schema
    that :func:`validate_params` and ``bamkit methods`` read, declared once per method.
    """

    def deco(cls: type[Method]) -> type[Method]:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        sig = inspect.Signature(
            [
                inspect.Parameter("self", kind),
                *(inspect.Parameter(k, kind, default=v) for k, v in defaults.items()),
            ]
        )

        def __init__(self: Method, *args: Any, **kwargs: Any) -> None:
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError as e:
                raise ConfigError(
                    f"attribution {cls.name!r}: {e}; parameters: {', '.join(defaults) or 'none'}"
                ) from None
            bound.apply_defaults()
            for k, v in list(bound.arguments.items())[1:]:
                setattr(self, k, tuple(float(x) for x in v) if k in ("mean", "std") else v)
            self.check()

        __init__.__signature__ = sig  # type: ignore[attr-defined]
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return deco


def functional(cls: type[Method]) -> Callable[..., torch.Tensor]:
    """The functional form of a method: ``f(model, inputs, target, *, generator=None, seeds=None,
    opts=ExecOptions(), **hyper_parameters)`` builds ``cls(**hyper_parameters)`` and attributes (captum's
    uniform call); hyper-parameters are keywords and are validated by the constructor."""

    def attribute(
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
        **params: Any,
    ) -> torch.Tensor:
        return cls(**params).attribute(model, inputs, target, generator=generator, seeds=seeds, opts=opts)

    attribute.__name__ = attribute.__qualname__ = cls.name or cls.__name__.lower()
    attribute.__doc__ = (
        f"Functional form of :class:`{cls.__name__}` ({cls.name!r}): (N,C,H,W) inputs, (N,) targets -> "
        f"attributions; keyword hyper-parameters: {', '.join(parameter_defaults(cls)) or 'none'}."
    )
    return attribute


def parameter_defaults(cls: type) -> dict[str, Any]:
    """Keyword parameters of ``cls.__init__`` with their defaults (``inspect.Parameter.empty`` if required)."""
    sig = inspect.signature(cls.__init__)
    return {
        n: p.default
        for n, p in sig.parameters.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def validate_params(cls: type[Method], params: dict[str, Any]) -> None:
    """Reject unknown hyper-parameters before any model runs, naming the method and the known ones."""
    known = parameter_defaults(cls)
    for k in params:
        if k not in known:
            raise ConfigError(
                f"attribution {cls.name!r} has no parameter {k!r}; known: {', '.join(known) or 'none'}"
            )


@contextlib.contextmanager
def model_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode with weight gradients off; restore mode and ``requires_grad`` flags after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


@contextlib.contextmanager
def removable(handles: list) -> Iterator[list]:
    """Hold hook handles; remove every one on exit, exception or not (captum's hook-removal contract)."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
        handles.clear()


def check_inputs(inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """Validate (N,C,H,W) float inputs and return ``target`` as a LongTensor (N,) on the inputs' device."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4 or not inputs.is_floating_point():
        got = (
            f"{inputs.dtype} {tuple(inputs.shape)}"
            if isinstance(inputs, torch.Tensor)
            else type(inputs).__name__
        )
        raise ConfigError(f"attribute(): inputs must be a float tensor (N,C,H,W), got {got}")
    if isinstance(target, int):
        target = torch.full((inputs.shape[0],), target, dtype=torch.long)
    if not isinstance(target, torch.Tensor) or target.ndim != 1 or target.shape[0] != inputs.shape[0]:
        raise ConfigError(
            f"attribute(): target must be a LongTensor of shape ({inputs.shape[0]},), got "
            f"{getattr(target, 'shape', target)}"
        )
    return target.to(device=inputs.device, dtype=torch.long)
