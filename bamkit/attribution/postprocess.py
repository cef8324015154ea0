"""``to_saliency``: the one place where attributions become 2-D maps (docs/conventions.md#saliency-modes).

Each metric family needs its own reduction, and mixing families within a metric changes results (BAM scores
the positive part, GAG the absolute value, SmoothTaylor the signed sum). Degenerate maps — all zero, constant,
containing NaN/inf — are handled as docs/conventions.md#saliency-modes says and *flagged*, so reports can count them instead of silently
scoring NaNs.

Modes (aliases in brackets):

* ``bam`` [``bam_pos_p99``]: ``m = Σ_ch max(a, 0)``; ``M = clip((m − min m) / (p99(m) − min m), 0, 1)``
  (BAM ``visualize_pos_attr``). If ``p99 == min`` (sparse maps: GB, GradCAM, GAG) fall back to ``max``; if that
  equals ``min`` too, zeros + flag.
* ``abs_minmax`` [``abs_sum_minmax``]: ``m = Σ_ch |a|`` min–max scaled to [0, 1] (GAG); constant -> zeros + flag;
  all-NaN -> ones + flag (as the reference); NaN -> 0.
* ``signed`` [``signed_sum``]: ``Σ_ch a``, not rescaled (SmoothTaylor heat-maps).
* ``abs_p99``: ``clip((|m| − min|m|) / (p99|m| − min|m|), 0, 1)`` of the signed sum (SmoothTaylor's TV).
* ``chan_mean_abs``: ``mean_ch |a|`` (Park's pixel ranking), not rescaled.
* ``raw_flat``: the attribution flattened to (N, C·H·W) (Kendall τ / cosine).

Percentiles use linear interpolation (``numpy.percentile``'s default, which BAM used).
"""

from __future__ import annotations

import torch

from bamkit.errors import ConfigError

MODES = ("bam", "abs_minmax", "signed", "abs_p99", "chan_mean_abs", "raw_flat")
ALIASES = {"bam_pos_p99": "bam", "abs_sum_minmax": "abs_minmax", "signed_sum": "signed"}


def _as_nchw(attr: torch.Tensor) -> torch.Tensor:
    if not isinstance(attr, torch.Tensor) or attr.ndim not in (3, 4):
        got = tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__
        raise ConfigError(f"to_saliency(): expected attributions (N,C,H,W) or maps (N,H,W), got {got}")
    a = attr[:, None] if attr.ndim == 3 else attr
    return a.float() if a.dtype not in (torch.float32, torch.float64) else a


def _degenerate(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flags (N,) for maps with non-finite values, and the maps with those values set to 0."""
    flat = m.flatten(1)
    bad = ~torch.isfinite(flat)
    return bad.any(1), torch.where(bad, torch.zeros_like(flat), flat).view_as(m)


def _scale(m: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``clip((m − lo)/(hi − lo), 0, 1)`` per image; images with ``hi <= lo`` become zeros and are flagged."""
    span = hi - lo
    ok = span > 0
    safe = torch.where(ok, span, torch.ones_like(span))
    out = ((m - lo.view(-1, 1, 1)) / safe.view(-1, 1, 1)).clamp_(0.0, 1.0)
    return torch.where(ok.view(-1, 1, 1), out, torch.zeros_like(out)), ~ok


def _p99_scale(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = m.flatten(1)
    lo = flat.amin(1)
    hi = torch.quantile(flat, 0.99, dim=1) if flat.shape[1] else lo
    hi = torch.where(
        hi > lo, hi, flat.amax(1)
    )  # docs/conventions.md#saliency-modes: p99 == min on sparse maps
    return _scale(m, lo, hi)


def to_saliency(
    attr: torch.Tensor, mode: str = "bam", return_flags: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Reduce attributions to per-image 2-D maps.

    Args:
        attr: (N,C,H,W) attributions or (N,1,H,W)/(N,H,W) maps.
        mode: one of :data:`MODES` (or an alias ``bam_pos_p99``, ``abs_sum_minmax``, ``signed_sum``).
        return_flags: also return a bool (N,) tensor marking degenerate maps (non-finite values, or a map that
            cannot be scaled because it is constant / all zero).

    Returns:
        (N,H,W) maps (``raw_flat``: (N, C·H·W)) on ``attr``'s device, float32 (float64 if ``attr`` is), and the
        flags if ``return_flags``.
    """
    mode = ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ConfigError(
            f"to_saliency(): unknown mode {mode!r}; expected one of {', '.join(MODES)} "
            f"(or {', '.join(ALIASES)})"
        )
    a = _as_nchw(attr)
    nonfinite = (~torch.isfinite(a)).flatten(1).any(1)
    if mode == "raw_flat":
        flat = a.flatten(1)
        out, flags = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0), nonfinite | (flat == 0).all(1)
    elif mode == "abs_minmax":
        all_nan = torch.isnan(a).flatten(1).all(1)
        _, m = _degenerate(a.abs().sum(1))
        flat = m.flatten(1)
        out, const = _scale(m, flat.amin(1), flat.amax(1))
        out = torch.where(all_nan.view(-1, 1, 1), torch.ones_like(out), out)
        flags = nonfinite | const
    elif mode == "bam":
        _, m = _degenerate(a.clamp_min(0).sum(1))
        out, const = _p99_scale(m)
        flags = nonfinite | const
    elif mode == "abs_p99":
        _, m = _degenerate(a.sum(1))
        out, const = _p99_scale(m.abs())
        flags = nonfinite | const
    else:
        _, m = _degenerate(a.sum(1) if mode == "signed" else a.abs().mean(1))
        flat = m.flatten(1)
        flags = nonfinite | (flat.amax(1) == flat.amin(1))
        out = m
    return (out, flags) if return_flags else out
