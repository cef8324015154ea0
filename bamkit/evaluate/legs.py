"""The evaluation scenarios as *legs*: one model on one set's rows (BAM §4; SPEC §3).

* MCS (BAM §4.2): f_o and f_s on the same X_{o,s} val images, object masks.
* Relative MCS (BAM Fig. 6/13): each f_k and the reference f_1.0 on ``scenarios.rmcs.set`` (BAM: ``dog_bedroom``).
* IDR (§4.3): f_s on X_{o,s} and the paired X_{∅,s} image.
* IIR (§4.4) and App. C: f_∅ on bamboo_forest and bamboo_forest_patch (x + δ).
* Faithfulness (seeds): per-image RCAP, DAUC/IAUC, Dice/MAE against the object mask on one model and set.
* Stability (SPEC §3.9): Kendall τ and cosine of the raw attributions under input noise and attribution-guided
  masking; the leg's ``scores`` name the protocols.

The pair metrics computed from the legs' rows are :mod:`bamkit.evaluate.pairs`'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from bamkit.errors import DataError
from bamkit.evaluate.suite import Suite
from bamkit.provenance import derive_seed

log = logging.getLogger(__name__)


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


def _missing_message(kind: str, suite: Suite, models: list[str], sets: list[str]) -> str:
    """What scenario ``kind`` lacks and how to supply it (or to skip it on purpose)."""
    wanted = ", ".join(suite.metrics_of(kind)) or kind
    what, fix = [], []
    if models:
        files = ", ".join(f"{suite.role_file(m)}.ckpt" for m in models)
        what.append(f"model(s) {', '.join(models)} ({files} in {suite.models})")
        fix.append("train them (bamkit train) or point --models at the folder that holds them")
    if sets:
        what.append(f"set(s) {', '.join(sets)} in {suite.data}")
        if any("patch" in s for s in sets):
            fix.append("pass the δ file of 'bamkit delta --out FILE' with --patch-data FILE")
        else:
            fix.append("rebuild the dataset with a recipe whose 'sets' include them")
    return (
        f"metric(s) {wanted} cannot be computed: {'; '.join(what)} not found; {'; '.join(fix)}, "
        "remove the metric from the suite, or pass --allow-missing to skip it"
    )


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

    reducers = suite.reducers

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
            if not suite.allow_missing:
                raise DataError(_missing_message(kind, suite, missing, gone))
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
            if not suite.allow_missing:
                raise DataError(_missing_message("rmcs", suite, list(sc.rmcs.models), []))
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
        scores = suite.metrics_of("faithfulness")
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
