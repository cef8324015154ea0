"""The BAM scenarios as *legs* (one model on one set's rows) and the pair metrics computed from their rows.

* MCS (BAM §4.2): f_o and f_s on the same X_{o,s} val images, object masks; per pair ``g_c(f_o) − g_c(f_s)``.
* Relative MCS (BAM Fig. 6/13): each f_k and the reference f_1.0 on ``dog_bedroom``; Pearson ρ of the series
  of mean differences against verification's accuracy drop.
* IDR (§4.3): f_s on X_{o,s} and the paired X_{∅,s} image; per pair ``1[g_c(x_{−cf}) > g_c(x_{cf})]``.
* IIR (§4.4) and App. C: f_∅ on bamboo_forest and bamboo_forest_patch; ``1[|Δg| < t·g_c(x)]`` and ``|Δg|/g_c(x)``.
* Faithfulness (seeds): per-image RCAP, DAUC/IAUC, Dice/MAE against the object mask on one model and set.
* Stability (SPEC §3.9): Kendall τ and cosine of the raw attributions under input noise and attribution-guided
  masking, per (image, level); the leg's ``scores`` name the protocols (:mod:`bamkit.evaluate.stability`).
Every pair is kept only when both members are correctly classified (SPEC §1.4, the code's intersection).
The random-region baselines (SPEC §3.1) replace the object mask by another image's mask at a random place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bamkit.evaluate.suite import METRIC_REDUCER, METRIC_SCENARIO, Suite
from bamkit.metrics.bam import keyed_random_regions as random_region_masks  # noqa: F401  (runner, tests)
from bamkit.provenance import derive_seed  # noqa: F401  (re-exported for the evaluate modules)

log = logging.getLogger(__name__)

FAITHFULNESS_SCORES = tuple(m for m, s in METRIC_SCENARIO.items() if s == "faithfulness")


@dataclass(frozen=True)
class Leg:
    """One model on one set's rows, within a scenario.

    Attributes:
        rows: row indices into the set (sorted, unique).
        pairs: the pair key of each row (the row itself, or ``pair_index`` for cross-set pairs).
        reducers: the ``to_saliency`` modes the scenario's metrics read.
        scores: the per-image model-calling / mask metrics to compute (faithfulness), or the protocols
            ("noise", "masking") of a stability leg.
        random_baseline: whether to compute ``g_c`` with a random region too.
    """

    scenario: str
    role: str
    set: str
    rows: np.ndarray
    pairs: np.ndarray
    reducers: tuple[str, ...]
    scores: tuple[str, ...] = ()
    random_baseline: bool = False
    pool_pairs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def shard(self, index: int, count: int) -> Leg:
        """The rows of shard ``index`` of ``count``: a disjoint deterministic split by pair key."""
        if count == 1:
            return self
        keep = (self.pairs % count) == index
        return Leg(
            self.scenario,
            self.role,
            self.set,
            self.rows[keep],
            self.pairs[keep],
            self.reducers,
            self.scores,
            self.random_baseline,
            self.pool_pairs,
        )


def select_rows(view, split: str, max_images: int | None, seed: int, set_name: str) -> np.ndarray:
    """Rows of ``view`` in ``split``; at most ``max_images`` of them, a seeded uniform subset (sorted)."""
    n = len(view)
    rows = np.arange(n, dtype=np.int64)
    if split != "all":
        sp = np.asarray(view.read("split", None))
        rows = rows[sp == (1 if split == "val" else 0)]
    if max_images is not None and len(rows) > max_images:
        rng = np.random.default_rng(derive_seed(seed, "select", set_name))
        rows = np.sort(rng.choice(rows, size=max_images, replace=False))
    return rows


def _pair_index(view) -> np.ndarray:
    return np.asarray(view.read("pair_index", None), dtype=np.int64)


def _matched(view_a, rows_a: np.ndarray, view_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of set B paired (same ``pair_index``) with ``rows_a`` of set A: (rows_a kept, rows_b, pair keys)."""
    pa = _pair_index(view_a)[rows_a]
    pb = _pair_index(view_b)
    where = {int(p): i for i, p in enumerate(pb.tolist())}
    keep = np.array([int(p) in where for p in pa], dtype=bool)
    rows_b = np.array([where[int(p)] for p in pa[keep]], dtype=np.int64)
    return rows_a[keep], rows_b, pa[keep]


def plan_legs(suite: Suite, bam, roles: set[str]) -> tuple[list[Leg], dict[str, str]]:
    """The legs of every enabled scenario; scenarios whose models or sets are missing are skipped.

    Args:
        bam: an open :class:`bamkit.data.h5.BamFile`.
        roles: the model roles whose checkpoints exist.

    Returns:
        (legs, skipped) where ``skipped`` maps a scenario to the reason it did not run.
    """
    legs: list[Leg] = []
    skipped: dict[str, str] = {}
    sc = suite.scenarios

    def reducers(kind: str) -> tuple[str, ...]:
        return tuple(sorted({METRIC_REDUCER[m] for m in suite.metrics if METRIC_SCENARIO.get(m) == kind}))

    def need(kind: str, models: list[str], sets: list[str]) -> bool:
        if not suite.scenario_enabled(kind):
            return False
        missing = [m for m in models if m not in roles]
        if missing:
            skipped[kind] = f"model(s) {', '.join(missing)} not found"
        gone = [s for s in sets if not bam.has(s)]
        if gone:
            skipped[kind] = f"set(s) {', '.join(gone)} not in the data file"
        if kind in skipped:
            log.warning("evaluate: skipping scenario %s: %s", kind, skipped[kind])
            return False
        return True

    if need("mcs", list(sc.mcs.models), [sc.mcs.set]):
        v = bam[sc.mcs.set]
        rows = select_rows(v, sc.mcs.split, sc.mcs.max_images, suite.seed, sc.mcs.set)
        for role in sc.mcs.models:
            legs.append(
                Leg(
                    "mcs",
                    role,
                    sc.mcs.set,
                    rows,
                    rows,
                    reducers("mcs"),
                    random_baseline=sc.mcs.random_baseline,
                    pool_pairs=rows,
                )
            )
    if suite.scenario_enabled("rmcs"):
        present = [m for m in sc.rmcs.models if m in roles]
        if len(present) < len(sc.rmcs.models):
            log.warning(
                "evaluate: rmcs: using %d of %d k-models (%s missing)",
                len(present),
                len(sc.rmcs.models),
                ", ".join(m for m in sc.rmcs.models if m not in roles),
            )
        if not present:
            skipped["rmcs"] = "no k-model found"
        elif need("rmcs", [sc.rmcs.reference], [sc.rmcs.set]):
            v = bam[sc.rmcs.set]
            rows = select_rows(v, sc.rmcs.split, sc.rmcs.max_images, suite.seed, sc.rmcs.set)
            for role in [*present, sc.rmcs.reference]:
                legs.append(Leg("rmcs", role, sc.rmcs.set, rows, rows, reducers("rmcs"), pool_pairs=rows))
    for kind in ("idr", "iir"):
        s = getattr(sc, kind)
        if need(kind, [s.model], [s.set, s.paired_set]):
            va, vb = bam[s.set], bam[s.paired_set]
            rows_a = select_rows(va, s.split, s.max_images, suite.seed, s.set)
            rows_a, rows_b, pairs = _matched(va, rows_a, vb)
            rb = kind == "idr" and sc.idr.random_baseline
            order = np.argsort(rows_b, kind="stable")
            legs.append(
                Leg(kind, s.model, s.set, rows_a, pairs, reducers(kind), random_baseline=rb, pool_pairs=pairs)
            )
            legs.append(
                Leg(
                    kind,
                    s.model,
                    s.paired_set,
                    rows_b[order],
                    pairs[order],
                    reducers(kind),
                    random_baseline=rb,
                    pool_pairs=pairs,
                )
            )
    f = sc.faithfulness
    if need("faithfulness", [f.model], [f.set]):
        rows = select_rows(bam[f.set], f.split, f.max_images, suite.seed, f.set)
        scores = tuple(m for m in suite.metrics if METRIC_SCENARIO.get(m) == "faithfulness")
        legs.append(
            Leg(
                "faithfulness",
                f.model,
                f.set,
                rows,
                rows,
                reducers("faithfulness"),
                scores=scores,
                pool_pairs=rows,
            )
        )
    st = sc.stability
    if suite.stability_protocols() and need("stability", [st.model], [st.set]):
        rows = select_rows(bam[st.set], st.split, st.max_images, suite.seed, st.set)
        legs.append(
            Leg(
                "stability",
                st.model,
                st.set,
                rows,
                rows,
                (),
                scores=suite.stability_protocols(),
                pool_pairs=rows,
            )
        )
    return legs, skipped


# -- pair metrics -----------------------------------------------------------------------------------------
def _join(df: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame, col: str) -> pd.DataFrame:
    keys = ["method", "pair"]
    cols = [*keys, col, "correct"]
    return a[cols].merge(b[cols], on=keys, suffixes=("_a", "_b"))


def _rows(
    j: pd.DataFrame, scenario: str, metric: str, value: np.ndarray, included: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": scenario,
            "metric": metric,
            "method": j["method"].to_numpy(),
            "pair": j["pair"].to_numpy(),
            "value": value.astype(float),
            "included": included,
        }
    )


def pair_table(per_image: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Per-pair metric values (long format: scenario, metric, method, pair, value, included).

    ``included`` is the correctness filter of SPEC §1.4 (both members right) and a finite value.
    """
    out: list[pd.DataFrame] = []
    sc = suite.scenarios
    metrics = set(suite.metrics)

    def leg(scenario: str, role: str, set_name: str) -> pd.DataFrame:
        d = per_image
        return d[(d["scenario"] == scenario) & (d["model"] == role) & (d["set"] == set_name)]

    if "mcs" in metrics and (per_image["scenario"] == "mcs").any():
        a, b = leg("mcs", sc.mcs.models[0], sc.mcs.set), leg("mcs", sc.mcs.models[1], sc.mcs.set)
        for col, name in (("g_c", "mcs"), ("g_c_random", "mcs_random")):
            if col in a and a[col].notna().any():
                j = _join(per_image, a, b, col)
                v = (j[f"{col}_a"] - j[f"{col}_b"]).to_numpy(float)
                out.append(
                    _rows(j, "mcs", name, v, (j["correct_a"] & j["correct_b"]).to_numpy() & np.isfinite(v))
                )
    if "rmcs" in metrics and (per_image["scenario"] == "rmcs").any():
        ref = leg("rmcs", sc.rmcs.reference, sc.rmcs.set)
        for role in sc.rmcs.models:
            a = leg("rmcs", role, sc.rmcs.set)
            if a.empty:
                continue
            j = _join(per_image, a, ref, "g_c")
            v = (j["g_c_a"] - j["g_c_b"]).to_numpy(float)
            out.append(
                _rows(
                    j,
                    "rmcs",
                    f"rmcs_{role.removeprefix('f_')}",
                    v,
                    (j["correct_a"] & j["correct_b"]).to_numpy() & np.isfinite(v),
                )
            )
    if "idr" in metrics and (per_image["scenario"] == "idr").any():
        with_cf, without = leg("idr", sc.idr.model, sc.idr.set), leg("idr", sc.idr.model, sc.idr.paired_set)
        for col, name in (("g_c", "idr"), ("g_c_random", "idr_random")):
            if col in with_cf and with_cf[col].notna().any():
                j = _join(per_image, with_cf, without, col)
                ga, gb = j[f"{col}_a"].to_numpy(float), j[f"{col}_b"].to_numpy(float)
                ok = (j["correct_a"] & j["correct_b"]).to_numpy() & np.isfinite(ga) & np.isfinite(gb)
                out.append(_rows(j, "idr", name, (gb > ga).astype(float), ok))  # strict: BAM's metrics.py
    if {"iir", "attribution_change"} & metrics and (per_image["scenario"] == "iir").any():
        x, xd = leg("iir", sc.iir.model, sc.iir.set), leg("iir", sc.iir.model, sc.iir.paired_set)
        j = _join(per_image, x, xd, "g_c")
        gx, gd = j["g_c_a"].to_numpy(float), j["g_c_b"].to_numpy(float)
        both = (j["correct_a"] & j["correct_b"]).to_numpy() & np.isfinite(gx) & np.isfinite(gd)
        delta = np.abs(gd - gx)
        if "iir" in metrics:  # |Δ| < t·g_c(x): a pair with g_c(x) = 0 fails (SPEC §3.3)
            out.append(_rows(j, "iir", "iir", (delta < sc.iir.t * gx).astype(float), both))
        if "attribution_change" in metrics:
            with np.errstate(divide="ignore", invalid="ignore"):
                change = np.where(gx > 0, delta / np.where(gx > 0, gx, 1.0), np.nan)
            out.append(_rows(j, "iir", "attribution_change", change, both & (gx > 0)))
    f = per_image[per_image["scenario"] == "faithfulness"]
    for m in suite.metrics:
        if METRIC_SCENARIO.get(m) == "faithfulness" and m in f and not f.empty:
            v = f[m].to_numpy(float)
            out.append(
                pd.DataFrame(
                    {
                        "scenario": "faithfulness",
                        "metric": m,
                        "method": f["method"].to_numpy(),
                        "pair": f["pair"].to_numpy(),
                        "value": v,
                        "included": f["correct"].to_numpy(bool) & np.isfinite(v),
                    }
                )
            )
    if "protocol" in per_image:
        from bamkit.evaluate.stability import pair_rows

        st = pair_rows(per_image, suite)
        if len(st):
            out.append(st)
    if not out:
        return pd.DataFrame(columns=["scenario", "metric", "method", "pair", "value", "included"])
    return pd.concat(out, ignore_index=True)
