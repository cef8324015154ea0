"""The stability scenario (SPEC §3.9; Park, "SmoothGrad has better Kendall's rank for removed pixels"; Wang &
Kong 2022): Kendall τ and cosine between the raw flattened attributions a(x) and a(x̂), per method, image and
deviation level, under two protocols.

* ``noise`` (protocol 1): ``x̂ = x + ε·u``, u uniform in (0, 1] element-wise (one-sided, normalised units). Each
  image draws its u's from its own generator (seeded by suite seed, set and row), a fresh u per ε in the order
  of ``epsilons`` — exactly what :func:`bamkit.metrics.input_noise_stability` draws for that image alone.
* ``masking`` (protocol 2, Park eq. 6 with the SPEC §3.9 fixes): rank the pixels by the *clean* attribution's
  channel-mean |a|, set the top ``round(ratio·H·W)`` pixels to the fill value in **all** channels, on a fresh
  copy of x for every ratio — :func:`bamkit.metrics.masking_stability` per image.

Pairing: the method runs on x and on every x̂ with the image's own seeds (the seeds of the other scenarios), so
a stochastic method draws the same samples for both and the comparison measures the input change only.
Batching: the perturbed copies of many images and all their levels are stacked and sent through
``bamkit.attribution.attribute_many`` in chunks of ``batch_size`` copies (noise copies are shared by all
methods in one call; masked copies depend on the method's own ranking, one call per method), and each chunk
is reduced to τ and cosine at once, so memory stays bounded by one chunk of attributions.

Results: per-image rows with ``protocol``, ``level``, ``tau``, ``cosine``; per-image means over the levels as
per-pair metrics ``kendall_<protocol>`` / ``cosine_<protocol>``; per method × protocol × level means
(:func:`level_table`) and per method × protocol the Pearson r(τ, cosine) over all (image, level) points and
the Spearman ρ(τ, level) (:func:`correlation_rows`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bamkit.evaluate.scenarios import Leg, derive_seed
from bamkit.evaluate.suite import Suite

log = logging.getLogger(__name__)

PROTOCOLS = ("noise", "masking")
# Explain: (inputs (M,C,H,W), target (M,), seeds (M,)) -> label -> attributions (M,...)
Explain = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def make_explain(model: torch.nn.Module, methods: Mapping[str, Any], opts: Any = None) -> Explain:
    """``explain(inputs, target, seeds)`` running ``methods`` (label -> Method) in one ``attribute_many`` call.

    The per-image ``seeds`` make a copy's samples those of its clean image (paired noise, SPEC §3.9)."""
    import bamkit.attribution as A

    def explain(inputs: torch.Tensor, target: torch.Tensor, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        out = A.attribute_many(model, inputs, target, dict(methods), seeds=seeds, opts=opts)
        return {k: v.detach() for k, v in out.items()}

    return explain


# -- perturbed copies ---------------------------------------------------------------------------------------
def noise_copies(
    x: torch.Tensor, epsilons: Sequence[float], noise_seeds: Sequence[int]
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Protocol 1 copies ``(image index, level index, x̂ (C,H,W))`` in (image, level) order.

    Image i draws ``u = 1 − U[0,1)`` (so u ∈ (0, 1]) from ``torch.Generator().manual_seed(noise_seeds[i])``,
    one fresh draw per ε in order: the same numbers ``input_noise_stability(..., seed=noise_seeds[i])`` draws
    for that image alone, whatever batch or shard it falls in.

    Args:
        x: (B,C,H,W) normalised inputs.
    """
    for i in range(x.shape[0]):
        g = torch.Generator().manual_seed(int(noise_seeds[i]))
        xi = x[i : i + 1]
        for j, eps in enumerate(epsilons):
            u = (1 - torch.rand(xi.shape, generator=g)).to(xi)
            yield i, j, (xi + eps * u)[0]


def removal_rank(attr: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel by the clean attribution's channel-mean |a|, 0 = most attributed (stable ties:
    the earlier pixel in row-major order ranks first). (B,C',H,W) -> (B,H,W) long."""
    n, _, h, w = attr.shape
    score = attr.abs().mean(1).reshape(n, -1)
    order = torch.sort(score, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1).contiguous())
    return rank.reshape(n, h, w)


def masking_copies(
    x: torch.Tensor, attr: torch.Tensor, ratios: Sequence[float], fill: float | torch.Tensor = 0.0
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Protocol 2 copies ``(image index, level index, x̂ (C,H,W))``: the top ``round(ratio·H·W)`` pixels of the
    clean ranking (:func:`removal_rank`) set to ``fill`` in all channels, each ratio on a fresh copy of x.

    Args:
        x: (B,C,H,W) normalised inputs.
        attr: (B,C',H,W) clean attributions at input size (C' = C or 1).
        fill: a number, or a (C,) / (C,H,W) tensor in model space (e.g. the black image).
    """
    n, _, h, w = x.shape
    rank = removal_rank(attr).to(x.device)[:, None]  # (B,1,H,W)
    f = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    f = f.view(-1, 1, 1) if f.ndim == 1 else f
    for i in range(n):
        for j, r in enumerate(ratios):
            yield i, j, torch.where(rank[i] < round(r * h * w), f, x[i])


def _chunks(it: Iterator, size: int) -> Iterator[list]:
    buf: list = []
    for item in it:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def compare_copies(
    explain: Explain,
    clean: Mapping[str, torch.Tensor],
    copies: Iterator[tuple[int, int, torch.Tensor]],
    target: torch.Tensor,
    attr_seeds: torch.Tensor,
    tau_seeds: Sequence[int],
    n_levels: int,
    chunk: int,
    variant: str = "b",
    max_n: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """τ and cosine of every copy's attribution against its clean image's, chunk by chunk.

    Args:
        clean: label -> (B,...) clean attributions (the methods ``explain`` runs).
        copies: ``(image index, level index, x̂)`` items (:func:`noise_copies`, :func:`masking_copies`).
        target, attr_seeds: (B,) the clean images' targets and attribution seeds, repeated for their copies.
        tau_seeds: (B,) seeds of the ``max_n`` element subsets (one subset per image, the same at every level).

    Returns:
        label -> (tau (B,L), cosine (B,L)) float64 arrays.
    """
    from bamkit.metrics.stability import cosine_similarity, kendall_tau

    b = target.shape[0]
    out = {k: (np.full((b, n_levels), np.nan), np.full((b, n_levels), np.nan)) for k in clean}
    for part in _chunks(copies, chunk):
        img = torch.tensor([p[0] for p in part], dtype=torch.long)
        lev = [p[1] for p in part]
        xs = torch.stack([p[2] for p in part])
        hats = explain(xs, target[img.to(target.device)], attr_seeds[img])
        for label, hat in hats.items():
            ref = clean[label][img.to(clean[label].device)]
            cos = cosine_similarity(ref, hat).double().cpu().numpy()
            tau, cs = out[label]
            for k, (i, j) in enumerate(zip(img.tolist(), lev)):
                cs[i, j] = cos[k]
                tau[i, j] = kendall_tau(ref[k], hat[k], variant=variant, max_n=max_n, seed=int(tau_seeds[i]))
    return out


# -- one leg ------------------------------------------------------------------------------------------------
def image_seeds(suite: Suite, set_name: str, rows: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """(attribution seeds (B,) long — the seeds of every scenario's maps —, stability seeds (B,)) per row."""
    attr = torch.tensor([derive_seed(suite.seed, set_name, int(r)) for r in rows], dtype=torch.long)
    stab = [derive_seed(suite.seed, "stability", set_name, int(r)) for r in rows]
    return attr, stab


def _fill(suite: Suite, pre, x: torch.Tensor) -> float | torch.Tensor:
    if suite.scenarios.stability.fill == "black":
        return pre.black(x[:1])[0]
    return 0.0  # normalised 0 = the dataset mean colour (SPEC §3.9)


def stability_batch(
    suite: Suite,
    explain_of: Callable[[Sequence[str]], Explain],
    methods: Sequence[str],
    x: torch.Tensor,
    target: torch.Tensor,
    attr_seeds: torch.Tensor,
    stab_seeds: Sequence[int],
    protocols: Sequence[str],
    fill: float | torch.Tensor = 0.0,
    chunk: int = 64,
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Both protocols for one batch of images: ``(label, protocol) -> (tau (B,L), cosine (B,L))``.

    Args:
        explain_of: labels -> an :data:`Explain` running those methods (:func:`make_explain`).
        methods: the labels to evaluate.
        x: (B,C,H,W) normalised inputs; target: (B,) the clean predictions (kept for every copy).
        attr_seeds: (B,) long attribution seeds; stab_seeds: (B,) noise / τ-subset seeds.
        fill: protocol 2's fill value in model space.
        chunk: perturbed copies per ``attribute_many`` call.
    """
    st = suite.scenarios.stability
    explain = explain_of(list(methods))
    clean = explain(x, target, attr_seeds)
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    common = {"variant": st.variant, "max_n": st.max_n}
    if "noise" in protocols:
        copies = noise_copies(x, st.epsilons, stab_seeds)
        res = compare_copies(
            explain, clean, copies, target, attr_seeds, stab_seeds, len(st.epsilons), chunk, **common
        )
        out.update({(k, "noise"): v for k, v in res.items()})
    if "masking" in protocols:
        for label in methods:
            a = clean[label]
            if a.ndim != 4 or a.shape[-2:] != x.shape[-2:]:  # a map at another resolution cannot rank pixels
                log.warning(
                    "evaluate: stability masking skipped for %s: attribution %s is not at input size %s",
                    label,
                    tuple(a.shape),
                    tuple(x.shape[-2:]),
                )
                nan = np.full((x.shape[0], len(st.ratios)), np.nan)
                out[(label, "masking")] = (nan, nan.copy())
                continue
            copies = masking_copies(x, a, st.ratios, fill)
            one = explain_of([label])  # masked copies depend on the method's own ranking
            res = compare_copies(
                one, {label: a}, copies, target, attr_seeds, stab_seeds, len(st.ratios), chunk, **common
            )
            out[(label, "masking")] = res[label]
    return out


def run_stability_leg(runner, leg: Leg) -> list[pd.DataFrame]:
    """The stability rows of ``leg`` (one model on one set's rows) for a :class:`ShardRunner`."""
    from bamkit.progress import bar

    lm = runner.models[leg.role]
    view = runner.bam[leg.set]
    pre = lm.meta.preprocess
    p = next(iter(lm.module.parameters()), None)
    dev = p.device if p is not None else torch.device("cpu")
    st = runner.suite.scenarios.stability
    bs = runner.suite.execution.batch_size
    chunk = st.batch_size or bs
    objs = {label: obj for label, (_, obj) in runner.methods.items()}

    def explain_of(labels: Sequence[str]) -> Explain:
        return make_explain(lm.module, {k: objs[k] for k in labels}, runner.opts)

    levels = {"noise": st.epsilons, "masking": st.ratios}
    frames = []
    steps = range(0, len(leg.rows), bs)
    for s in bar(steps, total=len(steps), desc=f"stability {leg.role} {leg.set}", unit="batch"):
        rows = leg.rows[s : s + bs]
        x = pre(torch.from_numpy(view.read("images", rows)).to(dev))
        labels = view.read(lm.meta.label_field, rows).astype(np.int64)
        with torch.no_grad():
            logits = lm.module(x)
        target = logits.argmax(1)
        logit = logits.gather(1, target[:, None])[:, 0].double().cpu().numpy()
        attr_seeds, stab_seeds = image_seeds(runner.suite, leg.set, rows)
        res = stability_batch(
            runner.suite,
            explain_of,
            list(objs),
            x,
            target,
            attr_seeds,
            stab_seeds,
            leg.scores,
            _fill(runner.suite, pre, x),
            chunk,
        )
        pred = target.cpu().numpy()
        for label in objs:
            for proto in leg.scores:
                tau, cos = res[(label, proto)]
                lv = np.asarray(levels[proto], dtype=float)
                nb, nl = tau.shape
                frames.append(
                    pd.DataFrame(
                        {
                            "scenario": "stability",
                            "model": leg.role,
                            "model_hash": lm.key[:16],
                            "set": leg.set,
                            "image": np.repeat(rows.astype(np.int64), nl),
                            "pair": np.repeat(rows.astype(np.int64), nl),
                            "method": label,
                            "label": np.repeat(labels, nl),
                            "target": np.repeat(pred, nl),
                            "prediction": np.repeat(pred, nl),
                            "correct": np.repeat(pred == labels, nl),
                            "logit": np.repeat(logit, nl),
                            "protocol": proto,
                            "level": np.tile(lv, nb),
                            "tau": tau.reshape(-1),
                            "cosine": cos.reshape(-1),
                        }
                    )
                )
    return frames


# -- tables -------------------------------------------------------------------------------------------------
def _points(per_image: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """The stability rows kept for summaries (the ``correct_only`` filter applied)."""
    if per_image.empty or "protocol" not in per_image:
        return per_image.iloc[0:0]
    d = per_image[per_image["scenario"] == "stability"]
    if suite.scenarios.stability.correct_only:
        d = d[d["correct"].astype(bool)]
    return d


def pair_rows(per_image: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Per-image means over the levels as per-pair rows ``kendall_<protocol>`` / ``cosine_<protocol>``
    (the levels where the value is defined; NaN levels are counted in :func:`level_table`)."""
    d = per_image[per_image["scenario"] == "stability"] if "protocol" in per_image else per_image.iloc[0:0]
    out = []
    for proto in PROTOCOLS:
        p = d[d["protocol"] == proto]
        if p.empty:
            continue
        g = p.groupby(["method", "image"], sort=False)
        means = g[["tau", "cosine"]].mean()  # pandas' mean skips NaN
        correct = g["correct"].first().astype(bool)
        keep = correct if suite.scenarios.stability.correct_only else pd.Series(True, index=correct.index)
        for col, metric in (("tau", f"kendall_{proto}"), ("cosine", f"cosine_{proto}")):
            v = means[col].to_numpy(float)
            out.append(
                pd.DataFrame(
                    {
                        "scenario": "stability",
                        "metric": metric,
                        "method": means.index.get_level_values("method"),
                        "pair": means.index.get_level_values("image").astype(np.int64),
                        "value": v,
                        "included": keep.to_numpy(bool) & np.isfinite(v),
                    }
                )
            )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def level_table(per_image: pd.DataFrame, suite: Suite, methods: Sequence[str]) -> pd.DataFrame:
    """Per method × protocol × level: images, undefined values, mean/std of τ and cosine."""
    cols = [
        "method",
        "protocol",
        "level",
        "n",
        "n_undefined",
        "tau_mean",
        "tau_std",
        "cosine_mean",
        "cosine_std",
    ]
    d = _points(per_image, suite)
    rows = []
    for method in methods:
        for proto in PROTOCOLS:
            p = d[(d["method"] == method) & (d["protocol"] == proto)]
            for level, q in p.groupby("level", sort=True):
                t, c = q["tau"].to_numpy(float), q["cosine"].to_numpy(float)
                ok = np.isfinite(t)
                rows.append(
                    [
                        method,
                        proto,
                        float(level),
                        int(ok.sum()),
                        int((~ok).sum()),
                        float(t[ok].mean()) if ok.any() else math.nan,
                        float(t[ok].std(ddof=1)) if ok.sum() > 1 else math.nan,
                        float(np.nanmean(c)) if np.isfinite(c).any() else math.nan,
                        float(np.nanstd(c, ddof=1)) if np.isfinite(c).sum() > 1 else math.nan,
                    ]
                )
    return pd.DataFrame(rows, columns=cols)


def correlation_rows(per_image: pd.DataFrame, suite: Suite, methods: Sequence[str]) -> list[dict[str, Any]]:
    """Summary rows per method × protocol: ``tau_cosine_r_<protocol>`` (Pearson r over every finite (image,
    level) point, the quantity Park and Wang & Kong discuss) and ``tau_level_rho_<protocol>`` (Spearman ρ of τ
    with the level; protocol 2 wants a strong negative ρ). Not scores: no rank (SPEC §3.12)."""
    from bamkit.metrics import stats

    d = _points(per_image, suite)
    rows = []
    for proto in PROTOCOLS:
        for method in methods:
            p = d[(d["method"] == method) & (d["protocol"] == proto)]
            if p.empty:
                continue
            t, c, lv = (p[k].to_numpy(float) for k in ("tau", "cosine", "level"))
            ok = np.isfinite(t) & np.isfinite(c)
            for metric, xs, ys in (
                (f"tau_cosine_r_{proto}", c[ok], t[ok]),
                (f"tau_level_rho_{proto}", lv[np.isfinite(t)], t[np.isfinite(t)]),
            ):
                fn = stats.pearson if metric.startswith("tau_cosine") else stats.spearman
                r, pv = fn(xs.tolist(), ys.tolist()) if len(xs) >= 3 else (math.nan, math.nan)
                rows.append(
                    {
                        "metric": metric,
                        "method": method,
                        "value": float(r),
                        "n": int(len(xs)),
                        "p_value": float(pv),
                        "trial_mean": math.nan,
                        "trial_std": math.nan,
                        "ci_low": math.nan,
                        "ci_high": math.nan,
                    }
                )
    return rows


def summary_section(per_image: pd.DataFrame, suite: Suite, methods: Sequence[str]) -> dict[str, Any]:
    """The ``stability`` section of ``summary.json`` (the report's curves and tables)."""
    st = suite.scenarios.stability
    lt = level_table(per_image, suite, methods)
    if lt.empty:
        return {}
    return {
        "levels": lt.to_dict(orient="records"),
        "protocols": sorted(set(lt["protocol"]), key=PROTOCOLS.index),
        "variant": st.variant,
        "max_n": st.max_n,
        "fill": st.fill,
        "model": st.model,
        "set": st.set,
        "correct_only": st.correct_only,
    }
