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
The protocols themselves are :func:`bamkit.metrics.stability.input_noise_stability` and
:func:`~bamkit.metrics.stability.masking_stability` (looked up in the metric registry): they stack the perturbed
copies of a batch of images and all their levels and send them through ``attribute_many`` in chunks of
``batch_size`` copies (noise copies are shared by all methods in one call; masked copies depend on the method's
own ranking, one call per method), so memory stays bounded by one chunk of attributions.

Results: per-image rows with ``protocol``, ``level``, ``tau``, ``cosine``; per-image means over the levels as
per-pair metrics ``kendall_<protocol>`` / ``cosine_<protocol>``; per method × protocol × level means
(:func:`level_table`) and per method × protocol the Pearson r(τ, cosine) over all (image, level) points and
the Spearman ρ(τ, level) (:func:`correlation_rows`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bamkit.evaluate.cache import model_token
from bamkit.evaluate.legs import Leg
from bamkit.evaluate.suite import StabilityScenario
from bamkit.metrics.registry import METRICS
from bamkit.metrics.stability import Explain
from bamkit.provenance import derive_seed

log = logging.getLogger(__name__)

PROTOCOLS = ("noise", "masking")
_PROTOCOL_METRIC = {"noise": "kendall_noise", "masking": "kendall_masking"}


def make_explain(
    model: torch.nn.Module,
    methods: Mapping[str, Any],
    target: torch.Tensor,
    seeds: torch.Tensor,
    opts: Any = None,
) -> Explain:
    """``explain(inputs, index)`` running ``methods`` (label -> Method) in one ``attribute_many`` call, each copy
    with the target and the attribution seeds of the clean image it comes from (``index``), so a copy's samples
    are those of its clean image (paired noise, SPEC §3.9)."""
    import bamkit.attribution as A

    def explain(inputs: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = A.attribute_many(
            model, inputs, target[index.to(target.device)], dict(methods), seeds=seeds[index], opts=opts
        )
        return {k: v.detach() for k, v in out.items()}

    return explain


# -- one leg ------------------------------------------------------------------------------------------------
def image_seeds(seed: int, role: str, set_name: str, rows: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """(attribution seeds (B,) long — the seeds of every scenario's maps, keyed by model as well —, stability
    seeds (B,) of the noise and τ subsets) per row."""
    attr = torch.tensor([derive_seed(seed, role, set_name, int(r)) for r in rows], dtype=torch.long)
    stab = [derive_seed(seed, "stability", set_name, int(r)) for r in rows]
    return attr, stab


def _fill(st: StabilityScenario, pre, x: torch.Tensor) -> float | torch.Tensor:
    if st.fill == "black":
        return pre.black(x[:1])[0]
    return 0.0  # normalised 0 = the dataset mean colour (SPEC §3.9)


def stability_batch(
    st: StabilityScenario,
    explain_of: Callable[[Sequence[str]], Explain],
    methods: Sequence[str],
    x: torch.Tensor,
    stab_seeds: Sequence[int],
    protocols: Sequence[str],
    fill: float | torch.Tensor = 0.0,
    chunk: int = 64,
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Both protocols for one batch of images: ``(label, protocol) -> (tau (B,L), cosine (B,L))``, computed by
    the registry's protocol functions (:mod:`bamkit.metrics.stability`).

    Args:
        explain_of: labels -> an :data:`~bamkit.metrics.stability.Explain` running those methods with each
            image's target and attribution seeds (:func:`make_explain`).
        methods: the labels to evaluate.
        x: (B,C,H,W) normalised inputs; stab_seeds: (B,) noise / τ-subset seeds.
        fill: protocol 2's fill value in model space.
        chunk: perturbed copies per ``attribute_many`` call.
    """
    explain = explain_of(list(methods))
    rows = torch.arange(x.shape[0])
    clean = explain(x, rows)
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    common = {"variant": st.variant, "max_n": st.max_n, "seeds": stab_seeds, "chunk": chunk}
    if "noise" in protocols:
        noise = METRICS.get(_PROTOCOL_METRIC["noise"]).resolve()
        res = noise(explain, x, st.epsilons, clean=clean, **common)  # copies shared by every method
        out.update({(k, "noise"): (r.tau.numpy(), r.cosine.numpy()) for k, r in res.items()})
    if "masking" in protocols:
        masking = METRICS.get(_PROTOCOL_METRIC["masking"]).resolve()
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
            one = explain_of([label])  # masked copies depend on the method's own ranking

            def single(inputs: torch.Tensor, index: torch.Tensor, one=one, label=label) -> torch.Tensor:
                return one(inputs, index)[label]

            r = masking(single, x, st.ratios, fill, clean=a, **common)
            out[(label, "masking")] = (r.tau.numpy(), r.cosine.numpy())
    return out


def run_stability_leg(runner, leg: Leg) -> list[pd.DataFrame]:
    """The stability rows of ``leg`` (one model on one set's rows) for a :class:`ShardRunner`."""
    from bamkit.progress import bar

    lm = runner.models[leg.role]
    view = runner.bam[leg.set]
    pre = lm.meta.preprocess
    p = next(iter(lm.module.parameters()), None)
    dev = p.device if p is not None else torch.device("cpu")
    st = runner.scenarios.stability
    bs = runner.execution.batch_size
    chunk = st.batch_size or bs
    objs = {label: obj for label, (_, obj) in runner.methods.items()}
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
        attr_seeds, stab_seeds = image_seeds(runner.seed, leg.role, leg.set, rows)

        def explain_of(labels: Sequence[str], target=target, attr_seeds=attr_seeds) -> Explain:
            return make_explain(lm.module, {k: objs[k] for k in labels}, target, attr_seeds, runner.opts)

        res = stability_batch(st, explain_of, list(objs), x, stab_seeds, leg.scores, _fill(st, pre, x), chunk)
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
                            "model_hash": model_token(lm.key),
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
def _points(per_image: pd.DataFrame, st: StabilityScenario) -> pd.DataFrame:
    """The stability rows kept for summaries (the ``correct_only`` filter applied)."""
    if per_image.empty or "protocol" not in per_image:
        return per_image.iloc[0:0]
    d = per_image[per_image["scenario"] == "stability"]
    if st.correct_only:
        d = d[d["correct"].astype(bool)]
    return d


def pair_rows(per_image: pd.DataFrame, st: StabilityScenario) -> pd.DataFrame:
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
        keep = correct if st.correct_only else pd.Series(True, index=correct.index)
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


def level_table(per_image: pd.DataFrame, st: StabilityScenario, methods: Sequence[str]) -> pd.DataFrame:
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
    d = _points(per_image, st)
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


def correlation_rows(
    per_image: pd.DataFrame, st: StabilityScenario, methods: Sequence[str]
) -> list[dict[str, Any]]:
    """Summary rows per method × protocol: ``tau_cosine_r_<protocol>`` (Pearson r over every finite (image,
    level) point, the quantity Park and Wang & Kong discuss) and ``tau_level_rho_<protocol>`` (Spearman ρ of τ
    with the level; protocol 2 wants a strong negative ρ). Not scores: no rank (SPEC §3.12). The correlation
    functions are the registry's (``bamkit.metrics.stats``)."""
    d = _points(per_image, st)
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
                fn = METRICS.get(metric).resolve()
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


def summary_section(per_image: pd.DataFrame, st: StabilityScenario, methods: Sequence[str]) -> dict[str, Any]:
    """The ``stability`` section of ``summary.json`` (the report's curves and tables)."""
    lt = level_table(per_image, st, methods)
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
