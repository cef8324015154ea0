"""BAM's metrics (Yang & Kim 2019, §4): region attribution g_c, concept attribution G_c, MCS and its relative
series, IDR, IIR and App. C's relative attribution change, plus the random-region baseline generator.

All inputs are cached per-image quantities: saliency maps from ``to_saliency(mode="bam")`` (docs/conventions.md#saliency-modes,
``bam_pos_p99``) and the object masks. Conventions (docs/conventions.md#region-attribution-and-the-correctness-filter, matching ``bam/metrics.py``):

* a pair is scored only when *both* members are correctly classified (``correct``, the intersection);
* an empty mask makes g_c undefined: :func:`region_attribution` returns NaN for that row, and every
  aggregate leaves such rows out and reports how many (:class:`~bamkit.metrics.functional.Score`);
* an aggregate over zero pairs is NaN with ``n == 0`` — never a silent NaN;
* constant (all-zero) maps are valid input: ``to_saliency`` returns zeros for them (docs/conventions.md#saliency-modes), g_c = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bamkit.errors import ConfigError, DataError
from bamkit.metrics.functional import Score, as_bool, check_maps, check_same_shape
from bamkit.metrics.stats import pearson
from bamkit.provenance import derive_seed
from bamkit.published import REFERENCE_K, accuracy_drop


def region_attribution(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Region attribution ``g_c(f,x) = Σ(M ⊙ I_c) / Σ I_c`` (BAM §4.1), one value per image.

    Args:
        saliency: (N,H,W) maps in [0, 1] from ``to_saliency(attr, mode="bam")``.
        masks: (N,H,W) bool region masks I_c (the object, or where it would be).

    Returns:
        (N,) float g_c; NaN where a mask is empty (no region: g_c is undefined, and aggregates skip it).
    """
    check_maps(saliency, "saliency")
    if masks.shape != saliency.shape:
        raise DataError(
            f"region_attribution: masks shape {tuple(masks.shape)} != saliency shape "
            f"{tuple(saliency.shape)}; resize masks to the map resolution (Preprocess.masks)"
        )
    m = masks.to(device=saliency.device, dtype=torch.bool)
    area = m.sum(dim=(1, 2)).to(torch.float64)
    mass = torch.where(m, saliency.double(), 0.0).sum(dim=(1, 2))
    g = mass / area  # 0/0 -> NaN for empty masks, by design
    # float16 caches must not cost precision in g_c: at least float32 out
    return g.to(torch.float64 if saliency.dtype == torch.float64 else torch.float32)


def both_correct(
    pred_a: torch.Tensor, label_a: torch.Tensor, pred_b: torch.Tensor, label_b: torch.Tensor
) -> torch.Tensor:
    """The pair filter of docs/conventions.md#region-attribution-and-the-correctness-filter: ``pred_a == label_a`` and ``pred_b == label_b`` (the intersection). (N,) bool

    MCS: (f_o on x, object label) and (f_s on x, scene label); IDR: f_s on x_cf and on x_−cf (scene label);
    IIR: f on x and on x+δ. Predictions may be class indices (N,) or logits (N,K) (argmax taken).
    """

    def idx(p: torch.Tensor) -> torch.Tensor:
        return p.argmax(1) if p.ndim == 2 else p

    a, b = idx(pred_a), idx(pred_b)
    if not (a.shape == label_a.shape == b.shape == label_b.shape) or a.ndim != 1:
        raise DataError(
            f"both_correct: expected four (N,) tensors (or (N,K) logits), got {tuple(pred_a.shape)}, "
            f"{tuple(label_a.shape)}, {tuple(pred_b.shape)}, {tuple(label_b.shape)}"
        )
    return (a == label_a.to(a.device)) & (b == label_b.to(b.device))


def _score(values: torch.Tensor, correct: torch.Tensor, defined: torch.Tensor) -> Score:
    correct = as_bool(correct, values.shape[0], "correct").to(values.device)
    keep = correct & defined
    n = int(keep.sum())
    excluded = {"incorrect": int((~correct).sum()), "undefined": int((correct & ~defined).sum())}
    # numpy's pairwise sum: the same float as the evaluate stage's per-pair tables and statistics
    value = float(values[keep].double().cpu().numpy().mean()) if n else math.nan
    return Score(value, n, excluded)


def concept_attribution(g: torch.Tensor, correct: torch.Tensor) -> Score:
    """Concept attribution ``G_c(f, X_corr)``: mean g_c over correctly classified rows (BAM §4.1)."""
    return _score(g.double(), correct, torch.isfinite(g))


# --------------------------------------------------------------------------------------------- MCS
def mcs_per_pair(g_model1: torch.Tensor, g_model2: torch.Tensor) -> torch.Tensor:
    """Per-input contrast ``g_c(f_1,x) − g_c(f_2,x)`` (NaN where either is undefined). (N,)"""
    check_same_shape(g_model1=g_model1, g_model2=g_model2)
    return g_model1 - g_model2


def mcs_score(g_model1: torch.Tensor, g_model2: torch.Tensor, correct: torch.Tensor) -> Score:
    """Model Contrast Score with its sample size (BAM §4.2; docs/metrics.md#model-contrast-score-mcs).

    ``MCS = G_c(f_1, X_corr) − G_c(f_2, X_corr)``, computed as the mean of per-input differences over the
    intersection of correctly classified inputs (``bam/metrics.py``), so both terms use the same inputs.

    Args:
        g_model1: (N,) g_c of the model for which the region matters (f_o, or f^k).
        g_model2: (N,) g_c of the contrast model (f_s, or f^1.0) on the same inputs.
        correct: (N,) bool, both models right on input i.
    """
    d = mcs_per_pair(g_model1, g_model2).double()
    return _score(d, correct, torch.isfinite(d))


def mcs(g_model1: torch.Tensor, g_model2: torch.Tensor, correct: torch.Tensor) -> float:
    """MCS as a float; NaN when no pair is usable — use :func:`mcs_score` to see ``n``."""
    return mcs_score(g_model1, g_model2, correct).value


@dataclass(frozen=True)
class RmcsResult:
    """Relative MCS series (BAM §4.2, Fig. 6/13) and its Pearson ρ against the accuracy drop.

    ``rho9`` uses k = 0.1..0.9; ``rho10`` appends the reference model itself (k = 1.0, MCS = 0), since the
    paper does not say which it used (docs/metrics.md#relative-mcs). NaN where undefined (fewer than 3 finite points or a
    constant series).
    """

    ks: tuple[float, ...]
    series: tuple[float, ...]
    n: tuple[int, ...]
    rho9: float
    p9: float
    rho10: float
    p10: float


def rmcs_series(
    g_k: Mapping[float, torch.Tensor],
    g_ref: torch.Tensor,
    correct_k: Mapping[float, torch.Tensor],
    correct_ref: torch.Tensor,
    acc_drop: Mapping[float, float] | None = None,
    ref_k: float = REFERENCE_K,
) -> RmcsResult:
    """Relative MCS over the commonality models ``MCS(f^k, f^{1.0})`` and Pearson ρ vs the accuracy drop.

    Args:
        g_k: k -> (N,) g_c of model f^k on the common inputs (e.g. ``dog_bedroom``, docs/metrics.md#model-contrast-score-mcs).
        g_ref: (N,) g_c of the reference model f^{ref_k} on the same inputs.
        correct_k: k -> (N,) bool, f^k correct; intersected with ``correct_ref`` per k.
        correct_ref: (N,) bool, the reference model correct.
        acc_drop: k -> accuracy drop when the CF is removed (``bamkit verify``); without one, the paper's
            (:func:`bamkit.published.accuracy_drop` decides).
        ref_k: the reference k (1.0).
    """

    drop, _ = accuracy_drop(acc_drop)
    ks = tuple(sorted(k for k in g_k if not math.isclose(k, ref_k)))
    if set(ks) - set(correct_k):
        raise DataError(f"rmcs_series: correct_k lacks k = {sorted(set(ks) - set(correct_k))}")
    scores = [
        mcs_score(
            g_k[k],
            g_ref,
            as_bool(correct_k[k], g_ref.shape[0], "correct_k").to(g_ref.device)
            & as_bool(correct_ref, g_ref.shape[0], "correct_ref").to(g_ref.device),
        )
        for k in ks
    ]
    series = [s.value for s in scores]
    return rmcs_correlation(ks, series, [s.n for s in scores], drop, ref_k)


def rmcs_correlation(
    ks: Sequence[float],
    series: Sequence[float],
    n: Sequence[int],
    acc_drop: Mapping[float, float],
    ref_k: float = REFERENCE_K,
) -> RmcsResult:
    """Pearson ρ of a relative-MCS series against the accuracy drop: over k = 0.1 … 0.9 (``rho9``) and with the
    reference model's own point appended (k = 1.0: its MCS against itself is 0; ``rho10``). The one place this
    correlation is computed, for map methods (:func:`rmcs_series`) and concept methods (TCAV) alike.

    Args:
        ks: the k of each series value; series: MCS(f^k, f^ref) per k; n: pairs behind each value.
        acc_drop: k -> accuracy drop (points); NaN points drop out of ρ.
    """
    missing = [k for k in ks if k not in acc_drop]
    if missing:
        raise DataError(f"rmcs_series: no accuracy drop for k = {missing}; pass acc_drop from bamkit verify")
    x9, y9 = [acc_drop[k] for k in ks], list(series)
    r9, p9 = pearson(x9, y9)
    r10, p10 = pearson([*x9, acc_drop.get(ref_k, math.nan)], [*y9, 0.0])
    return RmcsResult(tuple(ks), tuple(series), tuple(n), r9, p9, r10, p10)


# --------------------------------------------------------------------------------------------- IDR
def idr_per_pair(g_with_cf: torch.Tensor, g_without_cf: torch.Tensor) -> torch.Tensor:
    """``1[g_c(f, x_cf) < g_c(f, x_−cf)]`` (strict, BAM §4.3); False where either g_c is undefined. (N,) bool"""
    check_same_shape(g_with_cf=g_with_cf, g_without_cf=g_without_cf)
    return g_with_cf < g_without_cf


def idr_score(g_with_cf: torch.Tensor, g_without_cf: torch.Tensor, correct: torch.Tensor) -> Score:
    """Input Dependence Rate with its sample size (BAM §4.3; docs/metrics.md#input-dependence-rate-idr).

    The fraction of pairs where the region gets *less* attribution when the (unimportant to f_s) object
    covers it than when the scene shows through. Random-region baseline ≈ 0.5. Higher is better.

    Args:
        g_with_cf: (N,) g_c(f_s, x ∈ X_{o,s}).
        g_without_cf: (N,) g_c(f_s, x ∈ X_{∅,s}), same region.
        correct: (N,) bool, f_s correct on both images of the pair.
    """
    hit = idr_per_pair(g_with_cf, g_without_cf).double()
    return _score(hit, correct, torch.isfinite(g_with_cf) & torch.isfinite(g_without_cf))


def idr(g_with_cf: torch.Tensor, g_without_cf: torch.Tensor, correct: torch.Tensor) -> float:
    """IDR as a float; NaN when no pair is usable (:func:`idr_score` gives ``n``)."""
    return idr_score(g_with_cf, g_without_cf, correct).value


# --------------------------------------------------------------------------------------------- IIR / App. C
def iir_per_pair(g_x: torch.Tensor, g_x_delta: torch.Tensor, t: float = 0.1) -> torch.Tensor:
    """``1[|g_c(x+δ) − g_c(x)| < t·g_c(x)]`` (BAM §4.4 as coded); g_c(x) = 0 fails. (N,) bool"""
    check_same_shape(g_x=g_x, g_x_delta=g_x_delta)
    check_threshold(t)
    return (g_x_delta - g_x).abs() < t * g_x


def check_threshold(t: float) -> None:
    """IIR's relative tolerance must be positive (a pair passes when ``|Δg_c| < t·g_c(x)``)."""
    if not t > 0:
        raise ConfigError(f"iir: expected a threshold t > 0, got {t}; the paper uses t = 0.1")


def iir_score(g_x: torch.Tensor, g_x_delta: torch.Tensor, correct: torch.Tensor, t: float = 0.1) -> Score:
    """Input Independence Rate with its sample size (BAM §4.4; docs/metrics.md#input-independence-rate-iir). Higher is better.

    Args:
        g_x: (N,) g_c(f, x) for scene-only x, region = where δ goes.
        g_x_delta: (N,) g_c(f, x + δ).
        correct: (N,) bool, f correct on both x and x+δ.
        t: relative tolerance (10 %).
    """
    hit = iir_per_pair(g_x, g_x_delta, t).double()
    return _score(hit, correct, torch.isfinite(g_x) & torch.isfinite(g_x_delta))


def iir(g_x: torch.Tensor, g_x_delta: torch.Tensor, correct: torch.Tensor, t: float = 0.1) -> float:
    """IIR as a float; NaN when no pair is usable (:func:`iir_score` gives ``n``)."""
    return iir_score(g_x, g_x_delta, correct, t).value


def relative_attribution_change_per_pair(g_x: torch.Tensor, g_x_delta: torch.Tensor) -> torch.Tensor:
    """``|g_c(x+δ) − g_c(x)| / g_c(x)`` (BAM App. C); NaN where g_c(x) = 0 (the ratio is undefined). (N,)"""
    check_same_shape(g_x=g_x, g_x_delta=g_x_delta)
    d = (g_x_delta.double() - g_x.double()).abs()
    return torch.where(g_x > 0, d / g_x.double().clamp_min(1e-300), torch.nan)


def relative_attribution_change(g_x: torch.Tensor, g_x_delta: torch.Tensor, correct: torch.Tensor) -> Score:
    """App. C's average relative attribution change over X_corr; lower is better (BAM Fig. 11).

    Pairs with g_c(x) = 0 have no defined ratio and are excluded (counted under ``"undefined"``).
    """
    r = relative_attribution_change_per_pair(g_x, g_x_delta)
    return _score(r, correct, torch.isfinite(r))


# --------------------------------------------------------------------------------------------- baseline
def keyed_random_regions(
    masks_of,
    pairs: np.ndarray,
    pool_pairs: np.ndarray,
    pool_rows: np.ndarray,
    shape: tuple[int, int],
    seed: int,
    scenario: str,
) -> np.ndarray:
    """MCS/IDR random-region baseline masks (docs/metrics.md#model-contrast-score-mcs, bamkit default [D]).

    For each pair key, a generator seeded by (seed, scenario, pair) picks another pool member ("donor") and
    places the donor's object mask, cropped to its box, at a uniformly random position. The draw depends only
    on the pair key, so both members of a pair and every shard see the same region.

    Args:
        masks_of: ``rows -> bool (n, H, W)`` reader of the pool's masks.
        pairs: (n,) the pair keys to draw for; pool_pairs/pool_rows: the pool (pair key -> its row).
        shape: (H, W) of the masks.

    Returns:
        bool (n, H, W).
    """
    h, w = shape
    out = np.zeros((len(pairs), h, w), dtype=bool)
    if len(pool_pairs) == 0:
        return out
    donors = []
    gens = []
    for p in pairs.tolist():
        g = np.random.default_rng(derive_seed(seed, "random_region", scenario, p))
        j = int(g.integers(len(pool_pairs)))
        if len(pool_pairs) > 1 and int(pool_pairs[j]) == p:  # another image's mask, never the own one
            j = (j + 1 + int(g.integers(len(pool_pairs) - 1))) % len(pool_pairs)
        donors.append(int(pool_rows[j]))
        gens.append(g)
    uniq, inv = np.unique(np.asarray(donors, dtype=np.int64), return_inverse=True)
    dm = masks_of(uniq)
    for i, g in enumerate(gens):
        m = dm[inv[i]]
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            continue
        crop = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        ch, cw = crop.shape
        y0 = int(g.integers(h - ch + 1))
        x0 = int(g.integers(w - cw + 1))
        out[i, y0 : y0 + ch, x0 : x0 + cw] = crop
    return out


def random_region_masks(
    masks: torch.Tensor,
    mode: Literal["other_mask", "rectangle"] = "other_mask",
    seed: int = 0,
    generator: torch.Generator | None = None,
    aspect_range: Sequence[float] = (0.5, 2.0),
) -> torch.Tensor:
    """Random regions for the MCS/IDR random-mask baseline (BAM §5.1, App. G; generator per docs/metrics.md#model-contrast-score-mcs).

    The in-memory form of :func:`keyed_random_regions` (which the evaluate stage calls with pair keys and a
    lazily read pool): row i is keyed by its index.

    * ``"other_mask"``: row i gets the (non-empty) object mask of another randomly chosen row, moved to a
      uniformly random position where it fits entirely (same size distribution as the real masks).
    * ``"rectangle"``: row i gets an axis-aligned rectangle with the area of its own mask (aspect ratio
      log-uniform in ``aspect_range``), at a uniformly random position.

    Draws come from ``generator`` (CPU) or a fresh one seeded with ``seed``. Rows stay empty when every
    mask is empty (``"other_mask"``) or their own mask is (``"rectangle"``).

    Args:
        masks: (N,H,W) bool object masks.

    Returns:
        (N,H,W) bool random masks on the device of ``masks``.
    """
    if masks.ndim != 3:
        raise DataError(f"random_region_masks: expected (N,H,W) masks, got {tuple(masks.shape)}")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    n, h, w = masks.shape
    dev = masks.device
    m = masks.bool().cpu()
    nonempty = m.flatten(1).any(1)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    if mode == "other_mask":
        # One implementation with the evaluate stage: each row's donor and position come from its own
        # generator keyed by (seed, row), so a row's region does not depend on the other rows drawn with it.
        base = int(torch.randint(2**62, (1,), generator=g)) if generator is not None else seed
        pool = nonempty.nonzero()[:, 0].numpy()
        keys = np.arange(n)
        out = keyed_random_regions(lambda r: m.numpy()[r], keys, pool, pool, (h, w), base, "tensor")
        return torch.from_numpy(out).to(dev)
    if mode == "rectangle":
        area = m.sum((1, 2)).double()
        lo, hi = math.log(aspect_range[0]), math.log(aspect_range[1])
        aspect = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64))
        rh = (area * aspect).sqrt().round().clamp(1, h)
        rw = (area / rh).round().clamp(1, w)
        rh, rw = rh.long(), rw.long()
        ny = (torch.rand(n, generator=g) * (h - rh + 1)).floor().long()
        nx = (torch.rand(n, generator=g) * (w - rw + 1)).floor().long()
        iy = (ar_h[None] >= ny[:, None]) & (ar_h[None] < (ny + rh)[:, None])
        ix = (ar_w[None] >= nx[:, None]) & (ar_w[None] < (nx + rw)[:, None])
        out = iy[:, :, None] & ix[:, None, :] & nonempty[:, None, None]
        return out.to(dev)
    raise ConfigError(f"random_region_masks: mode {mode!r} is not one of 'other_mask', 'rectangle'")
