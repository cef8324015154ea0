"""Reference samplers for the tests: the built-in samplers' samples written the slow, obvious way — one image
at a time, one DRAW_CHUNK of draws at a time, each SampleBatch assembled by hand. The library's vectorised
``Sampler.batches`` must give exactly these samples (``test_attr_engine``), and tests that need an image's
noise draws one by one take them from here."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from bamkit.attribution import samplers as S
from bamkit.attribution.batching import DRAW_CHUNK
from bamkit.attribution.paths import channel_stats, resolve_baseline


def draw_chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, DRAW_CHUNK):
        yield start, min(n, start + DRAW_CHUNK)


def _index(j: int, k: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((k,), j, dtype=torch.long, device=x.device)


def gaussian_noise(s: S.Gaussian, x: torch.Tensor, j: int, k: int, gen, scale: torch.Tensor) -> torch.Tensor:
    """``k`` noise draws (k,C,H,W) in model space for image ``j``."""
    eps = torch.randn((k, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype) * scale
    if s.noise_space == "pixel":
        eps = eps / channel_stats(s.mean, s.std, x)[1]
    return eps


def path(s: S.StraightPath, end, base, j: int, copy: int | None = None) -> Iterator[S.SampleBatch]:
    """Path samples from ``base`` (1,C,H,W) to ``end`` (1,C,H,W) for image ``j``."""
    alphas = torch.as_tensor(s.alphas, device=end.device, dtype=end.dtype)
    weights = torch.as_tensor(s.weights, device=end.device, dtype=end.dtype)
    diff = end - base
    for a, b in draw_chunks(s.n_steps):
        al = alphas[a:b].view(-1, 1, 1, 1)
        k = b - a
        ci = None if copy is None else torch.full((k,), copy, dtype=torch.long, device=end.device)
        yield S.SampleBatch(
            base + al * diff, _index(j, k, end), weights[a:b], diff.expand(k, *diff.shape[1:]), ci
        )


def parts(s: S.Sampler, x: torch.Tensor, gens: list[torch.Generator]) -> Iterator[S.SampleBatch]:
    """The samples of a built-in sampler, image by image, chunk by chunk."""
    if isinstance(s, S.Identity):
        n = x.shape[0]
        yield S.SampleBatch(
            x, torch.arange(n, device=x.device), torch.ones(n, device=x.device, dtype=x.dtype)
        )
    elif isinstance(s, S.Gaussian):
        scales = s.scales(x)
        w = 1.0 / s.n_samples
        for j in range(x.shape[0]):
            for a, b in draw_chunks(s.n_samples):
                eps = gaussian_noise(s, x, j, b - a, gens[j], scales[j])
                full = torch.full((b - a,), w, device=x.device, dtype=x.dtype)
                yield S.SampleBatch(x[j : j + 1] + eps, _index(j, b - a, x), full, offset=-eps)
    elif isinstance(s, S.StraightPath):
        base = resolve_baseline(s.baseline, x, s.mean, s.std)
        for j in range(x.shape[0]):
            yield from path(s, x[j : j + 1], base[j : j + 1], j)
    elif isinstance(s, S.NoisyPath):
        scales = s.noise.scales(x)
        base = resolve_baseline(s.path.baseline, x, s.path.mean, s.path.std)
        n, m = s.noise.n_samples, s.path.n_steps
        for j in range(x.shape[0]):
            for a, b in draw_chunks(n):
                eps = gaussian_noise(s.noise, x, j, b - a, gens[j], scales[j])
                for k in range(b - a):
                    for part in path(s.path, x[j : j + 1] + eps[k : k + 1], base[j : j + 1], j, a + k):
                        part.copy_size, part.n_copies = m, n
                        yield part
    elif isinstance(s, S.BernoulliDrop):
        fill = resolve_baseline(s.fill, x[:1], s.mean, s.std)
        c, h, w = x.shape[1:]
        shape = (1, h, w) if s.per == "pixel" else (c, h, w)
        wt = 1.0 / s.n_samples
        for j in range(x.shape[0]):
            for a, b in draw_chunks(s.n_samples):
                k = b - a
                keep = torch.rand((k, *shape), generator=gens[j], device=x.device, dtype=x.dtype) >= s.drop_p
                xt = torch.where(keep, x[j : j + 1], fill)
                full = torch.full((k,), wt, device=x.device, dtype=x.dtype)
                yield S.SampleBatch(xt, _index(j, k, x), full, offset=x[j : j + 1] - xt)
    else:
        raise TypeError(f"no oracle for {type(s).__name__}")
