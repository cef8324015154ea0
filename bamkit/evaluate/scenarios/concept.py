"""Concept methods in the BAM scenarios (BAM App. F-G): TCAV's MCS and relative MCS.

A concept method scores a concept for a class, not pixels: MCS = TCAV(f_o, dog class, dog concept) −
TCAV(f_s, scene class of the target images, dog concept), and the relative series TCAV(f_k) − TCAV(f_1.0) over
the commonality models (all scene models; target class = the target images' scene); the models are the MCS
and relative-MCS scenarios'. Every model sees the same target, concept and random images (drawn once with the
suite's seed), preprocessed its own way. The spread over TCAV's random repeats gives the interval; the same
difference with the random counterpart as the "concept" is TCAV's random baseline (App. G). It runs once per
evaluation (in shard 0); the rows join the leaderboard, the series relative MCS's ρ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bamkit.classes import COMMON_FEATURE
from bamkit.errors import ConfigError, DataError
from bamkit.evaluate.legs import Split, select_rows
from bamkit.evaluate.methods import build
from bamkit.evaluate.scenarios.base import Scenario, ScenarioSettings, SummaryContext, register_scenario
from bamkit.provenance import derive_seed
from bamkit.published import k_label, k_of_model

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite


@dataclass(frozen=True)
class ConceptSettings(ScenarioSettings):
    """Concept methods (TCAV) in MCS and relative MCS.

    Args:
        target_set, split, max_images: the target images (BAM: ``dog_bedroom``, 100 images).
        concept_set, concept_split, n_concept: the concept examples: images of ``concept_set`` that show the
            common feature (BAM: 100 ``X_{o,s}`` images whose object is a dog).
        random_set, n_random: the random sets (BAM: ``X_{∅,s}`` images), ``n_random`` images each; the method's
            ``num_random`` negatives plus one counterpart are drawn, disjoint, with the suite's seed.
    """

    split: Split = "all"
    max_images: int | None = 100
    target_set: str = "dog_bedroom"
    concept_set: str = "obj_scene"
    concept_split: Split = "val"
    n_concept: int = 100
    random_set: str = "scene_only"
    n_random: int = 100

    def check(self, where: str) -> None:
        super().check(where)
        for key in ("n_concept", "n_random"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key} must be >= 1, got {getattr(self, key)}")


@register_scenario
class ConceptScenario(Scenario):
    """TCAV in MCS and relative MCS (BAM App. F-G): scores of whole image sets, computed once."""

    name, Settings = "concept", ConceptSettings
    smoke_images = 8
    report_parts = ()  # its rows stand in the MCS leaderboard and the relative-MCS figure

    def wanted(self, suite: Suite) -> bool:
        return (
            self.settings.enabled
            and bool(suite.concept_methods())
            and bool({"mcs", "rmcs"} & set(suite.metric_names))
        )

    def check(self, suite: Suite, where: str) -> None:
        super().check(suite, where)
        if suite.concept_methods() and not ({"mcs", "rmcs"} & set(suite.metric_names)):
            raise ConfigError(
                f"{where.rsplit('.scenarios', 1)[0]}: concept method(s) {[m.label for m in suite.concept_methods()]} "
                "are scored by MCS and relative MCS only; list 'mcs' or 'rmcs' under metrics:, or remove them"
            )

    def smoke_applied(self) -> ConceptSettings:
        s = self.settings
        return replace(super().smoke_applied(), n_concept=min(s.n_concept, self.smoke_images),
                       n_random=min(s.n_random, self.smoke_images))  # fmt: skip

    def roles(self, suite: Suite) -> tuple[str, ...]:
        mcs, rmcs = suite.scenarios["mcs"], suite.scenarios["rmcs"]
        return (*mcs.models, *rmcs.models, rmcs.reference)

    def run_once(
        self, suite: Suite, bam: Any, models: Mapping[str, Any], opts: Any, cache: Any = None
    ) -> dict[str, Any]:
        return run_concept(suite, bam, models, opts, cache)

    def summary(self, ctx: SummaryContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        done = ctx.once.get(self.name) or {}
        return [dict(r) for r in done.get("rows", [])], {"concept": done.get("details", {})}


def _images(bam, set_name: str, rows: np.ndarray, lm, raw: dict) -> torch.Tensor:
    """The images of ``rows`` preprocessed for ``lm``; the stored pixels are read once per evaluation into ``raw``
    (every model scores the same target, concept and random images: the reads had cost 8 of TCAV's 62 s on the
    demo's twelve models)."""
    rows = np.sort(rows)
    key = (set_name, rows.tobytes())
    if key not in raw:
        raw[key] = torch.from_numpy(bam[set_name].read("images", rows))
    pixels = raw[key]
    dev = next(iter(lm.module.parameters())).device
    return lm.meta.preprocess(pixels.to(dev))


def concept_sets(suite: Suite, bam) -> dict[str, Any]:
    """Rows of the target images, the concept examples and ``num_random + 1`` disjoint random sets."""
    c = suite.scenarios["concept"]
    for s in (c.target_set, c.concept_set, c.random_set):
        if not bam.has(s):
            raise DataError(f"concept scenario: set {s!r} is not in the data file; build it or disable TCAV")
    target = select_rows(bam[c.target_set], c.split, c.max_images, suite.seed, c.target_set)
    cv = bam[c.concept_set]
    objects = list(bam.files[0].object_classes)
    lab = cv.read("object_label")
    pool = select_rows(cv, c.concept_split, None, suite.seed, c.concept_set)
    pool = pool[lab[pool] == objects.index(COMMON_FEATURE)]
    rng = np.random.default_rng(derive_seed(suite.seed, "concept"))
    concept = np.sort(rng.choice(pool, size=min(c.n_concept, len(pool)), replace=False))
    num = max(getattr(build(m), "num_random", 2) for m in suite.concept_methods())
    rv = bam[c.random_set]
    rpool = select_rows(rv, c.concept_split, None, suite.seed, c.random_set)
    if len(rpool) < (num + 1) * 2:
        raise DataError(
            f"concept scenario: {len(rpool)} {c.random_set} images cannot make {num + 1} random sets; "
            "lower the methods' num_random or scenarios.concept.n_random"
        )
    per = min(c.n_random, len(rpool) // (num + 1))
    perm = rng.permutation(rpool)
    randoms = [np.sort(perm[i * per : (i + 1) * per]) for i in range(num + 1)]
    return {"target": target, "concept": concept, "randoms": randoms}


def _tcav(
    obj, spec, lm, bam, suite: Suite, sets: Mapping[str, Any], target_class: int, opts, cache, raw: dict
):
    """TCAV of one model, from the cache when this model, method, target class and image sets were scored before
    (by this evaluation folder or the run ``bamkit score`` reads), else computed and cached; ``raw`` holds the
    sets' stored pixels, shared by every model (:func:`_images`)."""
    from bamkit.attribution.tcav import TCAVResult
    from bamkit.evaluate.cache import model_token
    from bamkit.provenance import json_hash

    c = suite.scenarios["concept"]
    rows = {
        k: [list(map(int, r)) for r in v] if k == "randoms" else list(map(int, v)) for k, v in sets.items()
    }
    tokens = [bam.token(s) for s in (c.target_set, c.concept_set, c.random_set)]
    key = json_hash([model_token(str(lm.meta.checkpoint_hash)), spec.key, target_class, rows, tokens])[:24]
    hit = cache.get_json("concept", key) if cache is not None else None
    if hit is not None:
        return TCAVResult.from_dict(hit)
    randoms = [_images(bam, c.random_set, r, lm, raw) for r in sets["randoms"]]
    res = obj.score(
        lm.module,
        _images(bam, c.target_set, sets["target"], lm, raw),
        target_class,
        _images(bam, c.concept_set, sets["concept"], lm, raw),
        randoms[: obj.num_random],
        random_counterpart=randoms[-1],
        opts=opts,
    )
    if cache is not None:
        cache.put_json("concept", key, res.to_dict())
    return res


def _row(
    metric: str, method: str, value: float, a: Sequence[float], b: Sequence[float], n: int
) -> dict[str, Any]:
    """A TCAV difference ``value`` with the spread of its per-repeat differences ``a − b`` (t interval over the
    random repeats), n target images."""
    diffs = np.asarray(a, float) - np.asarray(b, float)
    ok = diffs[np.isfinite(diffs)]
    if len(ok) >= 2:
        from scipy import stats

        half = stats.t.ppf(0.975, len(ok) - 1) * ok.std(ddof=1) / math.sqrt(len(ok))
        lo, hi, std = float(ok.mean() - half), float(ok.mean() + half), float(ok.std(ddof=1))
    else:
        lo = hi = std = math.nan
    return {"metric": metric, "method": method, "value": float(value), "n": n, "trial_mean": float(np.mean(ok))
            if len(ok) else math.nan, "trial_std": std, "ci_low": lo, "ci_high": hi}  # fmt: skip


def run_concept(suite: Suite, bam, models: Mapping[str, Any], opts, cache=None) -> dict[str, Any]:
    """TCAV's rows for the leaderboard (``mcs``, ``mcs_random``) and its relative-MCS series per k."""
    specs = suite.concept_methods()
    if not specs:
        return {}
    mcs, rmcs = suite.scenarios["mcs"], suite.scenarios["rmcs"]
    sets = concept_sets(suite, bam)
    objects, scenes = bam.files[0].object_classes, bam.files[0].scene_classes
    target_view = bam[suite.scenarios["concept"].target_set]
    tscene = int(np.bincount(target_view.read("scene_label", sets["target"]).clip(0)).argmax())
    out: dict[str, Any] = {"rows": [], "series": {}, "details": {}, "sets": {k: len(v) if k != "randoms"
                           else [len(r) for r in v] for k, v in sets.items()}}  # fmt: skip
    raw: dict = {}  # the stored pixels of the sets, shared by every model and method
    for spec in specs:
        obj = build(spec)
        n = len(sets["target"])

        def score(role: str, cls: int, obj=obj, spec=spec):
            return _tcav(obj, spec, models[role], bam, suite, sets, cls, opts, cache, raw)

        res = {}
        if "mcs" in suite.metric_names and all(r in models for r in mcs.models):
            res["f_o"] = score(mcs.models[0], objects.index(COMMON_FEATURE))
            res["f_s"] = score(mcs.models[1], tscene)
            fo, fs = res["f_o"], res["f_s"]
            out["rows"].append(_row("mcs", spec.label, fo.concept_score - fs.concept_score, fo.repeat_scores,
                                    fs.repeat_scores, n))  # fmt: skip
            # the random baseline's interval is the spread of its own (null) repeats
            out["rows"].append(_row("mcs_random", spec.label, fo.random_score - fs.random_score,
                                    fo.random_repeat_scores, fs.random_repeat_scores, n))  # fmt: skip
        if "rmcs" in suite.metric_names and rmcs.reference in models:
            ref = score(rmcs.reference, tscene)
            series = {}
            for role in rmcs.models:
                if role in models:
                    r = ref if role == rmcs.reference else score(role, tscene)  # deterministic: reuse
                    series[k_label(k_of_model(role))] = r.concept_score - ref.concept_score
                    res[role] = r
            res[rmcs.reference] = ref
            out["series"][spec.label] = series
        out["details"][spec.label] = {
            role: {"concept_score": r.concept_score, "kept_layers": list(r.kept_layers), "p_values": r.p_values,
                   "target_class": (objects if role == mcs.models[0] else scenes)[r.meta["target_class"]]}
            for role, r in res.items()
        }  # fmt: skip
    return out
