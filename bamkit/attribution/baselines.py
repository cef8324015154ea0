"""Baseline "methods" for metric sanity checks: a random map, and the reversed (misplaced) map of any method.

* ``random``: i.i.d. uniform [0, 1) per pixel from the image's own generator — the chance level every metric
  should beat (BAM's random baselines; docs/metrics.md#model-contrast-score-mcs).
* ``reversed``: GAG's Proposition 1 / ``return_misplaced_map`` (docs/methods.md): sort the 2-D map, keep the top
  ``remain`` fraction, and swap (after shuffling both groups) the lowest ``mis`` fraction with the equally large
  band just below the kept top. Every metric should score it worse than the original map.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bamkit.attribution.base import ExecOptions, Method, register
from bamkit.attribution.engine import image_generators, resolve_seeds
from bamkit.attribution.postprocess import ALIASES, MODES, to_saliency
from bamkit.errors import ConfigError

GAG = "Huang & Liu 2024, Guided AbsoluteGrad (arXiv 2404.15564), Proposition 1 / reversed maps"


@register(
    "random", paper="random-map baseline (Yang & Kim 2019 §5; docs/metrics.md#model-contrast-score-mcs)"
)
class RandomMap(Method):
    """Uniform random (N,1,H,W) map; deterministic for given seeds. A reference, never ranked (see
    :attr:`Method.reference`)."""

    output = "map"
    stochastic = True
    reference = True

    def __init__(self) -> None:
        pass

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
        n, _, h, w = inputs.shape
        gens = image_generators(resolve_seeds(n, generator, seeds), inputs.device)
        maps = [
            torch.rand((1, 1, h, w), generator=g, device=inputs.device, dtype=torch.float32) for g in gens
        ]
        return torch.cat(maps) if maps else inputs.new_zeros((0, 1, h, w))


def misplace(maps: torch.Tensor, remain: float, mis: float, gens: list[torch.Generator]) -> torch.Tensor:
    """The misplaced maps (N,H,W) of ``maps`` (N,H,W) (docs/methods.md); ``gens[j]`` shuffles image ``j``."""
    n = maps.shape[0]
    out = maps.clone()
    flat_out = out.view(n, -1)
    size = flat_out.shape[1]
    top, k = int(round(remain * size)), int(round(mis * size))
    if top + 2 * k > size:
        raise ConfigError(
            f"reversed: remain {remain} + 2 × mis {mis} exceed the map (need remain + 2·mis <= 1)"
        )
    for j in range(n):
        order = torch.argsort(maps[j].flatten(), stable=True)
        low = order[:k]
        band = order[size - top - k : size - top]
        low = low[torch.randperm(k, generator=gens[j], device=gens[j].device).to(low.device)]
        band = band[torch.randperm(k, generator=gens[j], device=gens[j].device).to(band.device)]
        src = maps[j].flatten()
        flat_out[j, low] = src[band]
        flat_out[j, band] = src[low]
    return out


@register("reversed", paper=GAG)
class Reversed(Method):
    """The misplaced 2-D map of another method (N,1,H,W).

    Args:
        method: registered name of the method whose map is reversed.
        remain: top fraction kept in place (GAG: 0.07; 0.03 for Guided Backprop).
        mis: fraction swapped (GAG: 0.10).
        mode: ``to_saliency`` mode that turns the attribution into the 2-D map first (GAG: ``abs_minmax``).
        params: hyper-parameters of ``method``.
    """

    output = "map"
    stochastic = True

    def __init__(
        self,
        method: str = "smoothgrad",
        remain: float = 0.07,
        mis: float = 0.10,
        mode: str = "abs_minmax",
        params: dict[str, Any] | None = None,
    ) -> None:
        from bamkit.attribution.adapters import make

        if not (0 <= remain <= 1 and 0 <= mis <= 1 and remain + 2 * mis <= 1):
            raise ConfigError(f"reversed: need 0 <= remain, mis and remain + 2·mis <= 1, got {remain}, {mis}")
        if ALIASES.get(mode, mode) not in MODES or ALIASES.get(mode, mode) == "raw_flat":
            raise ConfigError(
                f"reversed: mode {mode!r} does not give a 2-D map; use one of bam, abs_minmax, "
                "signed, abs_p99, chan_mean_abs"
            )
        if method == "reversed":
            raise ConfigError("reversed: method must be another attribution method, not 'reversed'")
        self.method, self.remain, self.mis, self.mode = method, float(remain), float(mis), mode
        self.method_params = dict(params or {})
        self.inner = make(method, **self.method_params)

    def params(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "method": self.method,
            "remain": self.remain,
            "mis": self.mis,
            "mode": self.mode,
            "params": self.method_params,
        }

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
        from bamkit.attribution.engine import run_methods

        seeds = resolve_seeds(inputs.shape[0], generator, seeds)
        a = run_methods(model, inputs, target, {"m": self.inner}, seeds=seeds, opts=opts)["m"]
        # shuffling draws come from generators offset from the method's own seeds, so they are independent
        gens = image_generators(seeds ^ 0x5EED, inputs.device)
        return misplace(to_saliency(a, self.mode), self.remain, self.mis, gens)[:, None]
