"""The stability scenario (Park, "SmoothGrad has better Kendall's rank for removed pixels"; Wang & Kong 2022;
docs/metrics.md#stability): Kendall τ and cosine between the raw flattened attributions a(x) and a(x̂), per method, image and
deviation level, under two protocols.

* ``noise`` (protocol 1): ``x̂ = x + ε·u``, u uniform in (0, 1] element-wise (one-sided, normalised units). Each
  image draws its u's from its own generator (seeded by suite seed, set and row), a fresh u per ε in the order
  of ``epsilons`` — exactly what :func:`bamkit.metrics.input_noise_stability` draws for that image alone.
* ``masking`` (protocol 2, Park eq. 6 with the fixes docs/metrics.md#stability lists): rank the pixels by the *clean* attribution's
  channel-mean |a|, set the top ``round(ratio·H·W)`` pixels to the fill value in **all** channels, on a fresh
  copy of x for every ratio — :func:`bamkit.metrics.masking_stability` per image.

Pairing: the method runs on x and on every x̂ with the image's own seeds (the seeds of the other scenarios), so
a stochastic method draws the same samples for both and the comparison measures the input change only.
The protocols themselves are :func:`bamkit.metrics.stability.input_noise_stability` and
:func:`~bamkit.metrics.stability.masking_stability` (looked up in the metric registry): they stack the perturbed
copies of a batch of images and all their levels and send them through ``attribute_many`` in chunks of
``batch_size`` copies (noise copies are shared by all methods in one call; masked copies depend on the method's
own ranking, one call per method), so memory stays bounded by one chunk of attributions.

Results: per-image rows with ``protocol``, ``level``, ``tau``, ``cosine``; the tables built from them are
:mod:`bamkit.evaluate.scenarios.stability_tables`'.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from bamkit.errors import ConfigError
from bamkit.evaluate.cache import model_token
from bamkit.evaluate.legs import Leg, PlanContext
from bamkit.evaluate.pairs import PairTable
from bamkit.evaluate.scenarios import stability_tables as tables
from bamkit.evaluate.scenarios.base import SummaryContext, register_scenario
from bamkit.evaluate.scenarios.single import SingleSetScenario, SingleSetSettings
from bamkit.metrics.registry import METRICS
from bamkit.metrics.stability import LEVELS, Explain, input_noise_stability
from bamkit.provenance import derive_seed

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite

log = logging.getLogger(__name__)

PROTOCOLS = tables.PROTOCOLS
_PROTOCOL_METRIC = {"noise": "kendall_noise", "masking": "kendall_masking"}
NONFINITE = "nonfinite"  # the per-image flag beside the protocols' (tau, cosine) in results and the cache
_DEFAULTS = inspect.signature(input_noise_stability).parameters  # the protocols' own defaults


@dataclass(frozen=True)
class StabilitySettings(SingleSetSettings):
    """Robustness of the raw attributions: Kendall τ and cosine between a(x) and a(x̂) for every method, image
    and deviation level.

    * Protocol 1 (metrics ``kendall_noise`` / ``cosine_noise``): ``x̂ = x + ε·u``, u uniform in (0, 1] per element,
      drawn per image from a generator seeded by (suite seed, set, row), a fresh u for every ε.
    * Protocol 2 (``kendall_masking`` / ``cosine_masking``): the top ``ratio`` pixels of the *clean*
      attribution's channel-mean |a| are set to ``fill`` in all channels, on a fresh copy of x per ratio.

    The method runs with the image's own seeds on x and on every x̂, so stochastic methods (SmoothGrad, ...)
    see the same noise draws: the comparison measures the input change, not sampling noise.

    Args:
        model, set, split, max_images: the images (a seeded subset, as the other scenarios).
        epsilons: ε of protocol 1 (normalised input units).
        ratios: removed fractions of protocol 2, in [0, 1].
        variant: Kendall τ-b (bamkit default) or τ-c (Park's notebook).
        max_n: compare a seeded random subset of this many attribution elements (None: all of them).
        fill: masked value: ``"mean"`` (0 in normalised space = the mean colour) or ``"black"`` (pixel 0).
        correct_only: summarise only correctly classified images (Park uses every image: default False).
        batch_size: perturbed copies per ``attribute_many`` call (default ``execution.batch_size``).
    """

    max_images: int | None = 50
    epsilons: tuple[float, ...] = LEVELS
    ratios: tuple[float, ...] = LEVELS
    variant: Literal["b", "c"] = _DEFAULTS["variant"].default
    max_n: int | None = _DEFAULTS["max_n"].default
    fill: Literal["mean", "black"] = "mean"
    correct_only: bool = False
    batch_size: int | None = None

    def check(self, where: str) -> None:
        super().check(where)
        for key, lo, hi in (("epsilons", 0.0, math.inf), ("ratios", 0.0, 1.0)):
            levels = getattr(self, key)
            if not levels:
                raise ConfigError(f"{where}.{key}: expected at least one level, got an empty list")
            bad = [v for v in levels if not (math.isfinite(v) and lo <= v <= hi)]
            if bad:
                raise ConfigError(
                    f"{where}.{key}: level {bad[0]!r} is outside [{lo}, {hi}]; use values such as 0.1 ... 1.0"
                )
            if len(set(levels)) != len(levels):
                raise ConfigError(
                    f"{where}.{key}: levels {list(levels)} repeat a value; list each level once"
                )
        if self.max_n is not None and self.max_n < 2:
            raise ConfigError(f"{where}.max_n must be >= 2 or null (all elements), got {self.max_n}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1 or null, got {self.batch_size}")


@register_scenario
class StabilityScenario(SingleSetScenario):
    """Kendall τ and cosine between a(x) and a(x̂) under input noise and attribution-guided masking."""

    name, Settings = "stability", StabilitySettings
    smoke_images = 4
    group = "Stability of the attributions"
    report_parts = ("stability",)

    def scores(self, suite: Suite) -> tuple[str, ...]:
        """The protocols the listed metrics ask for, in order ("noise", "masking")."""
        want = {METRICS.get(m).protocol for m in suite.metrics_of(self.name)}
        return tuple(p for p in PROTOCOLS if p in want)

    def wanted(self, suite: Suite) -> bool:
        return self.settings.enabled and bool(self.scores(suite))

    def leg_modes(self, ctx: PlanContext) -> tuple[str, ...]:
        return ()  # raw attributions of perturbed copies: no 2-D maps, no cache

    def run_leg(self, runner: Any, leg: Leg) -> list[pd.DataFrame]:
        return run_stability_leg(runner, leg, self.settings)

    def pairs(self, per_image: pd.DataFrame, suite: Suite, out: PairTable) -> None:
        if "protocol" in per_image:
            st = tables.pair_rows(per_image, self.settings)
            if len(st):
                out.parts.append(st)

    def summary(self, ctx: SummaryContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if "protocol" not in ctx.per_image:
            return [], {"stability": {}}
        order = [m.label for m in ctx.suite.methods]
        rows = tables.correlation_rows(ctx.per_image, self.settings, order)
        return rows, {"stability": tables.summary_section(ctx.per_image, self.settings, order)}


def make_explain(
    model: torch.nn.Module,
    methods: Mapping[str, Any],
    target: torch.Tensor,
    seeds: torch.Tensor,
    opts: Any = None,
) -> Explain:
    """``explain(inputs, index)`` running ``methods`` (label -> Method) in one ``attribute_many`` call, each copy
    with the target and the attribution seeds of the clean image it comes from (``index``), so a copy's samples
    are those of its clean image (paired noise)."""
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


def _fill(st: StabilitySettings, pre, x: torch.Tensor) -> float | torch.Tensor:
    if st.fill == "black":
        return pre.black(x[:1])[0]
    return 0.0  # normalised 0 = the dataset mean colour


def stability_batch(
    st: StabilitySettings,
    explain_of: Callable[[Sequence[str]], Explain],
    methods: Sequence[str],
    x: torch.Tensor,
    stab_seeds: Sequence[int],
    protocols: Sequence[str],
    fill: float | torch.Tensor = 0.0,
    chunk: int = 64,
) -> dict[tuple[str, str], Any]:
    """Both protocols for one batch of images: ``(label, protocol) -> (tau (B,L), cosine (B,L))``, computed by
    the registry's protocol functions (:mod:`bamkit.metrics.stability`), and ``(label, NONFINITE) -> (B,)`` bool:
    whether any of the image's maps (clean or perturbed) held NaN/Inf.

    Args:
        explain_of: labels -> an :data:`~bamkit.metrics.stability.Explain` running those methods with each
            image's target and attribution seeds (:func:`make_explain`).
        methods: the labels to evaluate.
        x: (B,C,H,W) normalised inputs; stab_seeds: (B,) noise / τ-subset seeds.
        fill: protocol 2's fill value in model space.
        chunk: perturbed copies per ``attribute_many`` call.
    """
    bad = {label: np.zeros(x.shape[0], bool) for label in methods}

    def tracked(labels: Sequence[str], of=explain_of) -> Explain:  # notes every image with a NaN/Inf map
        inner = of(labels)

        def explain(inputs: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
            maps = inner(inputs, index)
            for k, v in maps.items():
                if k in bad:
                    nonfinite = (~torch.isfinite(v)).flatten(1).any(1).cpu().numpy()
                    np.logical_or.at(bad[k], index.cpu().numpy(), nonfinite)
            return maps

        return explain

    explain_of = tracked
    explain = explain_of(list(methods))
    rows = torch.arange(x.shape[0])
    clean = explain(x, rows)
    out: dict[tuple[str, str], Any] = {}
    common = {"variant": st.variant, "max_n": st.max_n, "seeds": stab_seeds, "chunk": chunk}
    if "noise" in protocols:
        noise = METRICS.get(_PROTOCOL_METRIC["noise"]).function
        res = noise(explain, x, st.epsilons, clean=clean, **common)  # copies shared by every method
        out.update({(k, "noise"): (r.tau.numpy(), r.cosine.numpy()) for k, r in res.items()})
    if "masking" in protocols:
        masking = METRICS.get(_PROTOCOL_METRIC["masking"]).function
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
    for label in methods:
        out[(label, NONFINITE)] = bad[label]
    return out


def run_stability_leg(runner, leg: Leg, st: StabilitySettings) -> list[pd.DataFrame]:
    """The stability rows of ``leg`` (one model on one set's rows) for a :class:`ShardRunner`."""
    from bamkit.progress import bar

    lm = runner.models[leg.role]
    view = runner.bam[leg.set]
    pre = lm.meta.preprocess
    p = next(iter(lm.module.parameters()), None)
    dev = p.device if p is not None else torch.device("cpu")
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

        res, todo = _cached(runner, lm, leg, st, rows, list(objs))
        if todo:  # only the methods whose rows were not scored before (by this folder or the run it extends)
            done = stability_batch(st, explain_of, todo, x, stab_seeds, leg.scores, _fill(st, pre, x), chunk)
            _store(runner, lm, leg, st, rows, done, todo)
            res.update(done)
        pred = target.cpu().numpy()
        for label in objs:
            bad = np.asarray(res[(label, NONFINITE)], bool)
            for proto in leg.scores:
                tau, cos = res[(label, proto)]
                # an image with NaN/Inf maps has no score (never counted; the method is shown, not ranked)
                tau, cos = np.where(bad[:, None], np.nan, tau), np.where(bad[:, None], np.nan, cos)
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
                            "nonfinite": np.repeat(bad, nl),
                        }
                    )
                )
    return frames


def _row_keys(runner, lm, leg: Leg, st: StabilitySettings, label: str, rows: np.ndarray) -> list[str]:
    """Cache keys of one method's stability results per image: what they depend on (model, set, method and its
    code, the protocols' settings, the suite seed, the image), never the batch or shard the image fell in."""
    from bamkit.provenance import json_hash

    settings = [st.epsilons, st.ratios, st.variant, st.max_n, st.fill, runner.seed, list(leg.scores)]
    head = [model_token(lm.key), runner.bam.token(leg.set), runner.keys[label] + runner.key_suffix, settings]
    return [json_hash([*head, int(r)])[:24] for r in rows]


def _cached(runner, lm, leg: Leg, st: StabilitySettings, rows: np.ndarray, labels: list[str]):
    """(label, protocol) -> (tau (B,L), cosine (B,L)) of the methods whose every row is cached, and the rest."""
    res, todo = {}, []
    for label in labels:
        hits = [runner.cache.get_json("stability", k) for k in _row_keys(runner, lm, leg, st, label, rows)]
        if any(h is None or NONFINITE not in h for h in hits):  # (entries of before the flag: computed again)
            todo.append(label)
            continue
        for proto in leg.scores:
            res[(label, proto)] = tuple(np.array([h[proto][i] for h in hits], dtype=float) for i in (0, 1))
        res[(label, NONFINITE)] = np.array([bool(h[NONFINITE]) for h in hits])
    return res, todo


def _store(runner, lm, leg: Leg, st: StabilitySettings, rows: np.ndarray, res, labels: list[str]) -> None:
    for label in labels:
        for j, key in enumerate(_row_keys(runner, lm, leg, st, label, rows)):
            value = {proto: [res[(label, proto)][0][j].tolist(), res[(label, proto)][1][j].tolist()]
                     for proto in leg.scores}  # fmt: skip
            value[NONFINITE] = bool(res[(label, NONFINITE)][j])
            runner.cache.put_json("stability", key, value)
