"""The attribution engine: kernel × sampler × reducer, with shared samples (docs/methods.md#the-engine-kernels-samplers-reducers).

:func:`run_methods` groups the requested methods by ``(kernel.key(), sampler.key())``, evaluates each group's
samples once in batches of ``opts.batch_size`` and feeds every reducer of the group, so ``attribute_many`` costs
one pass per distinct sampler. Composite methods (Guided GradCAM = GB ⊙ GradCAM) are expanded into their parts,
which share passes with the other requested methods; methods that fit neither call their own ``attribute``.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Hashable
from typing import Any

import torch
from torch import nn

from bamkit.attribution.base import ExecOptions, Kernel, Method, check_inputs, model_guard
from bamkit.attribution.fold import folded
from bamkit.attribution.reducers import Reducer
from bamkit.attribution.samplers import Sampler
from bamkit.errors import ConfigError
from bamkit.progress import bar

DEFAULT_SEED = 0
# inputs on which a model's BatchNorm folding is found and checked (ExecOptions.fold_bn)
FOLD_PROBE_IMAGES = 2
_SEED_HIGH = 2**62


class SampledMethod(Method):
    """A method computed as ``reducer(kernel(sampler(x)))``; :meth:`attribute` runs the engine on it alone."""

    def sampled(self) -> bool:
        """Whether the engine may run this instance as kernel × sampler × reducer (False: call ``attribute``,
        e.g. SmoothTaylor with adaptive noising, whose σ depends on the image)."""
        return True

    @abstractmethod
    def kernel(self) -> Kernel:
        """What is evaluated per sample (e.g. ``gradients.InputGradient()``)."""

    @abstractmethod
    def sampler(self) -> Sampler:
        """Which modified inputs are evaluated."""

    @abstractmethod
    def reducer(self) -> Reducer:
        """How the per-sample outputs become one attribution."""

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
        return run_methods(model, inputs, target, {"m": self}, generator=generator, seeds=seeds, opts=opts)[
            "m"
        ]


class CompositeMethod(Method):
    """Combines other methods' results without extra passes (Guided GradCAM = GB ⊙ GC, BAM App. E)."""

    @abstractmethod
    def parts(self) -> dict[str, Method]:
        """The methods whose results :meth:`combine` needs, by name."""

    @abstractmethod
    def combine(self, results: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """The attribution from the parts' results."""

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
        return run_methods(model, inputs, target, {"m": self}, generator=generator, seeds=seeds, opts=opts)[
            "m"
        ]


# ----------------------------------------------------------------------------------------------- randomness


def resolve_seeds(
    n: int, generator: torch.Generator | None = None, seeds: torch.Tensor | None = None
) -> torch.Tensor:
    """One seed per image, LongTensor (N,) on the CPU (the randomness contract of ``Method.attribute``)."""
    if seeds is not None:
        s = torch.as_tensor(seeds)
        if s.ndim != 1 or s.shape[0] != n or s.is_floating_point():
            raise ConfigError(
                f"seeds must be an integer tensor of shape ({n},), one per image, got "
                f"{s.dtype} {tuple(s.shape)}"
            )
        return s.to("cpu", torch.long)
    if generator is None:
        generator = torch.Generator().manual_seed(DEFAULT_SEED)
    return torch.randint(0, _SEED_HIGH, (n,), generator=generator, device=generator.device).to("cpu")


def image_generators(seeds: torch.Tensor, device: torch.device) -> list[torch.Generator]:
    """A fresh ``torch.Generator`` per image on ``device``, seeded with ``seeds[j]``."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds.tolist()]


# ---------------------------------------------------------------------------------------------------- engine


def _method_key(m: Method) -> Hashable:
    """Methods of one class with equal parameters compute the same thing and are run once."""
    try:
        params = tuple(sorted((k, repr(v)) for k, v in m.params().items()))
    except Exception:  # a third-party method without introspectable params: never shared
        return ("instance", id(m))
    return (type(m).__module__, type(m).__qualname__, params)


def _accepts_seeds(m: Method) -> bool:
    try:
        return "seeds" in inspect.signature(m.attribute).parameters
    except (TypeError, ValueError):
        return False


def _expand(methods: dict[str, Method]) -> tuple[dict[Hashable, Method], dict[str, Any]]:
    """Flatten composites: unique leaf methods by key, and a plan that rebuilds each requested result."""
    leaves: dict[Hashable, Method] = {}

    def plan_of(m: Method, depth: int = 0) -> Any:
        if depth > 8:
            raise ConfigError(f"composite method {m.name!r} nests too deeply (a cycle in parts()?)")
        if isinstance(m, CompositeMethod):
            return ("composite", m, {p: plan_of(pm, depth + 1) for p, pm in m.parts().items()})
        k = _method_key(m)
        leaves.setdefault(k, m)
        return ("leaf", k)

    plans = {name: plan_of(m) for name, m in methods.items()}
    return leaves, plans


def run_methods(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    methods: dict[str, Method],
    *,
    generator: torch.Generator | None = None,
    seeds: torch.Tensor | None = None,
    opts: ExecOptions = ExecOptions(),
) -> dict[str, torch.Tensor]:
    """Run several methods on one batch, sharing every kernel evaluation that can be shared.

    Args:
        model: a module returning logits (N, classes); put in eval mode with weight gradients off for the call
            and restored after.
        inputs: (N,C,H,W) float, in the model's input space; never modified.
        target: (N,) long class indices (or one int for all).
        methods: name -> method instance.
        generator, seeds: randomness (see ``Method.attribute``).
        opts: precision, memory format, compile, BatchNorm folding, batch size.

    Returns:
        name -> attribution on the inputs' device: (N,C,H,W) for ``output == "input"``, (N,1,H,W) for maps.
    """
    target = check_inputs(inputs, target)
    seeds = resolve_seeds(inputs.shape[0], generator, seeds)
    x = inputs.detach()
    leaves, plans = _expand(methods)
    results: dict[Hashable, torch.Tensor] = {}
    groups: dict[Hashable, list[tuple[Hashable, SampledMethod]]] = {}
    for k, m in leaves.items():
        if isinstance(m, SampledMethod) and m.sampled():
            groups.setdefault((m.kernel().key(), m.sampler().key()), []).append((k, m))
    if opts.fold_bn:  # the BatchNorm-folded copy runs every pass (found and checked on a few of the inputs)
        with model_guard(model):
            model = folded(model, x[:FOLD_PROBE_IMAGES])
    with model_guard(model):
        for members in groups.values():
            results.update(_run_group(model, x, target, seeds, members, opts))
        for k, m in leaves.items():
            if k in results:
                continue
            kw = {"seeds": seeds} if _accepts_seeds(m) else {}
            results[k] = m.attribute(model, x, target, opts=opts, **kw)

    def build(plan: Any) -> torch.Tensor:
        if plan[0] == "leaf":
            return results[plan[1]]
        return plan[1].combine({p: build(sub) for p, sub in plan[2].items()}, x)

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, plan in plans.items():
        r = build(plan).to(
            dtype=inputs.dtype if inputs.dtype in (torch.float32, torch.float64) else torch.float32
        )
        if id(r) in seen:  # shared results (equal methods) must not alias: callers may modify them in place
            r = r.clone()
        seen.add(id(r))
        out[name] = r
    return out


def _run_group(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    seeds: torch.Tensor,
    members: list[tuple[Hashable, SampledMethod]],
    opts: ExecOptions,
) -> dict[Hashable, torch.Tensor]:
    """Evaluate one (kernel, sampler) group's samples once and feed every member's reducer."""
    kernel, sampler = members[0][1].kernel(), members[0][1].sampler()
    reducers: dict[Hashable, Reducer] = {}
    for _, m in members:
        r = m.reducer()
        reducers.setdefault(r.key(), r)
    gens = image_generators(seeds, x.device)  # cheap; samplers that draw nothing ignore them
    n_batches = -(-x.shape[0] * sampler.n_evals() // opts.batch_size)
    states: dict[Hashable, Any] | None = None
    with (
        kernel.bind(model, opts) as fn,
        bar(total=n_batches, desc=f"{members[0][1].name or 'attribution'}", unit="batch") as progress,
    ):
        for batch in sampler.batches(x, gens, opts.batch_size):
            g = fn(batch.inputs, target[batch.image_index])
            if states is None:
                shape = (x.shape[0], *g.shape[1:])
                states = {k: r.init(shape, g) for k, r in reducers.items()}
            for k, r in reducers.items():
                r.update(states[k], g, batch)
            progress.update(1)
    if states is None:  # an empty input batch
        return {k: x.new_zeros((0, *x.shape[1:])) for k, _ in members}
    final = {k: r.finalize(states[k], x) for k, r in reducers.items()}
    return {k: final[m.reducer().key()] for k, m in members}


def samples_per_image(methods: dict[str, Method]) -> int:
    """Kernel evaluations per image that :func:`run_methods` performs for ``methods`` (shared ones once)."""
    leaves, _ = _expand(methods)
    seen: dict[Hashable, int] = {}
    for m in leaves.values():
        if isinstance(m, SampledMethod) and m.sampled():
            seen[(m.kernel().key(), m.sampler().key())] = m.sampler().n_evals()
    return sum(seen.values())


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension (ties broken by position; maps are continuous)."""
    r = torch.empty_like(v, dtype=torch.float64)
    r.scatter_(
        -1,
        torch.argsort(v, dim=-1, stable=True),
        torch.arange(v.shape[-1], device=v.device, dtype=torch.float64).expand_as(v).contiguous(),
    )
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Spearman rank correlation of (N, D) tensors (N,)."""
    ra, rb = _ranks(a.flatten(1)), _ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-300)


def fidelity(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    methods: dict[str, Method],
    opts: ExecOptions,
    reference: ExecOptions | None = None,
    mode: str = "bam",
    seeds: torch.Tensor | None = None,
) -> dict[str, float]:
    """How much a precision / memory-format / compile setting changes the 2-D maps: the mean Spearman rank
    correlation per method between maps computed with ``opts`` and with ``reference`` (fp32, eager, same batch
    size and seeds). 1.0 = identical pixel ranking.
    """
    from bamkit.attribution.postprocess import to_saliency

    reference = reference or ExecOptions(batch_size=opts.batch_size)
    seeds = resolve_seeds(inputs.shape[0], None, seeds)
    ref = run_methods(model, inputs, target, methods, seeds=seeds, opts=reference)
    got = run_methods(model, inputs, target, methods, seeds=seeds, opts=opts)
    return {k: float(spearman(to_saliency(ref[k], mode), to_saliency(got[k], mode)).mean()) for k in methods}
