"""How samples travel: :class:`SampleBatch`, the image-major layout contract and its bookkeeping (per-image draw
blocks served for global row ranges, re-batching of chunk streams, index arithmetic for vectorised batches).

A sampler turns a batch of clean inputs ``x`` (N,C,H,W) into a stream of batches of at most ``batch_size`` rows.
Samples are laid out image-major (all samples of image 0, then image 1, ...), and every random draw for image ``j``
comes from ``gens[j]`` in a fixed order and in fixed chunks of :data:`DRAW_CHUNK` samples that do not depend on
``batch_size`` or on the other images — so a batch of images gives exactly the samples of its images one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

#: Random draws per image are made this many samples at a time, whatever the batch size (reproducibility).
DRAW_CHUNK = 32


@dataclass
class SampleBatch:
    """One batch of modified inputs.

    Attributes:
        inputs: (B,C,H,W) the modified inputs x̃ the kernel is evaluated on.
        image_index: (B,) long, the row of ``x`` each sample belongs to (non-decreasing).
        weight: (B,) quadrature weight (``1/n`` for Monte Carlo averages, 1 for a single sample).
        offset: (B,C,H,W) or None; ``x − x̃`` (SmoothTaylor) or ``x̃_end − baseline`` (IG paths).
        copy_index: (B,) long or None; for nested samplers (IG-SmoothGrad) which noisy copy of the image.
        copy_size: samples per copy (path points) for nested samplers, else 0.
        n_copies: copies per image for nested samplers, else 0.
    """

    inputs: torch.Tensor
    image_index: torch.Tensor
    weight: torch.Tensor
    offset: torch.Tensor | None = None
    copy_index: torch.Tensor | None = None
    copy_size: int = 0
    n_copies: int = 0

    def __len__(self) -> int:
        return self.inputs.shape[0]


def blocked(total: int, batch_size: int, make: Callable[[int, int], SampleBatch]) -> Iterator[SampleBatch]:
    """``make(lo, hi)`` for consecutive global sample ranges of ``batch_size`` rows (the last may be smaller).

    The vectorised path of the built-in samplers: a batch is built in a few tensor operations from index
    arithmetic over its sample range instead of concatenating per-image chunks (for small models the chunk
    shuffling cost more than the forward + backward). Batch boundaries are those of :func:`rebatch`.
    """
    for lo in range(0, total, batch_size):
        yield make(lo, min(total, lo + batch_size))


class ImageDraws:
    """Per-image random blocks ``draw(j, out)`` (out: (per_image, ...)) served for global row ranges.

    Image ``j``'s block is drawn exactly once, with its own generator and in :data:`DRAW_CHUNK` pieces (the
    reproducibility contract), straight into the batch when the image lies inside it. Requested ranges never go
    backwards, but the next one may start inside the last image of this one (a batch boundary inside an image,
    or inside one noisy copy's path), so that image is drawn into a side buffer and kept (one image's worth).
    """

    def __init__(
        self, per_image: int, shape: tuple[int, ...], like: torch.Tensor, draw: Callable, dtype=None
    ) -> None:
        self.per_image, self.shape, self.draw = per_image, shape, draw
        self.kw = {"device": like.device, "dtype": dtype or like.dtype}
        self.pending: tuple[int, torch.Tensor] | None = None

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """The draws of global rows ``lo..hi-1`` (image-major), shape (hi − lo, *shape)."""
        n = self.per_image
        out = torch.empty((hi - lo, *self.shape), **self.kw)
        last = (hi - 1) // n
        for j in range(lo // n, last + 1):
            a, b = max(lo, j * n), min(hi, (j + 1) * n)
            if self.pending is not None and self.pending[0] == j:
                block = self.pending[1]
            elif j < last and a == j * n:  # whole image inside, never asked for again: draw in place
                self.draw(j, out[a - lo : b - lo])
                continue
            else:
                block = torch.empty((n, *self.shape), **self.kw)
                self.draw(j, block)
            out[a - lo : b - lo] = block[a - j * n : b - j * n]
            if j == last:  # the next range may start inside this image (ranges are non-decreasing)
                self.pending = (j, block)
        return out


def gather_rows(t: torch.Tensor, idx: torch.Tensor, lo: int, hi: int, per: int) -> torch.Tensor:
    """``t[idx]`` for image indices ``idx`` of rows lo..hi-1 (a plain view when one image covers them all)."""
    if t.shape[0] == 1:
        return t.expand(hi - lo, *t.shape[1:])
    j0, j1 = lo // per, (hi - 1) // per
    if j0 == j1:
        return t[j0 : j0 + 1].expand(hi - lo, *t.shape[1:])
    return t.index_select(0, idx)


def layout_of(probe: torch.Tensor) -> torch.memory_format:
    """The memory format of ``probe``: batches are laid out as the per-image chunks of :meth:`Sampler.parts`
    were (e.g. channels_last when the preprocessed inputs are), which the convolutions' speed and exact
    numerics depend on."""
    if not probe.is_contiguous() and probe.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def rebatch(parts: Iterator[SampleBatch], batch_size: int) -> Iterator[SampleBatch]:
    """Concatenate/split a stream of sample chunks into batches of ``batch_size`` rows, keeping order."""
    pending: list[SampleBatch] = []
    count = 0
    for part in parts:
        start, total = 0, len(part)
        while start < total:
            take = min(batch_size - count, total - start)
            pending.append(part if take == total else _slice(part, start, start + take))
            start += take
            count += take
            if count == batch_size:
                yield _cat(pending)
                pending, count = [], 0
    if pending:
        yield _cat(pending)


def _slice(b: SampleBatch, i: int, j: int) -> SampleBatch:
    def s(t):
        return None if t is None else t[i:j]

    return SampleBatch(
        b.inputs[i:j],
        b.image_index[i:j],
        b.weight[i:j],
        s(b.offset),
        s(b.copy_index),
        b.copy_size,
        b.n_copies,
    )


def _cat(parts: list[SampleBatch]) -> SampleBatch:
    if len(parts) == 1:
        return parts[0]

    def c(name):
        ts = [getattr(p, name) for p in parts]
        return None if ts[0] is None else torch.cat(ts)

    return SampleBatch(
        c("inputs"),
        c("image_index"),
        c("weight"),
        c("offset"),
        c("copy_index"),
        parts[0].copy_size,
        parts[0].n_copies,
    )


def draw_chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, DRAW_CHUNK):
        yield start, min(n, start + DRAW_CHUNK)
