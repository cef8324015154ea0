"""What a scenario plans: *legs*, each one model on one set's rows (BAM §4), and the helpers every scenario
plans with — the seeded row selection, the pairing of two sets by ``pair_index``, and the check that the
models and sets a scenario needs exist (:class:`PlanContext`). The scenarios themselves are
:mod:`bamkit.evaluate.scenarios`'.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bamkit.errors import DataError
from bamkit.provenance import derive_seed

if TYPE_CHECKING:
    from bamkit.evaluate.suite import Suite

log = logging.getLogger(__name__)

Split = Literal[
    "val", "train", "all"
]  # the rows a scenario reads: the validation split, training, or every row


@dataclass(frozen=True)
class Leg:
    """One model on one set's rows, within a scenario.

    Attributes:
        rows: row indices into the set (sorted, unique).
        pairs: the pair key of each row (the row itself, or ``pair_index`` for cross-set pairs).
        modes: the ``to_saliency`` modes the scenario's metrics read.
        scores: the per-image metrics to compute (faithfulness), or the protocols ("noise", "masking") of a
            stability leg.
        random_baseline: whether to compute ``g_c`` with a random region too.
        pool_pairs: the pair keys the random regions' donor masks are drawn from.
        pair_key: what ``pairs`` holds: the ``"row"`` or the set's ``"pair_index"``.
        fields: per-row columns read from the set: ``(column, dataset, value where the set lacks it)``
            (IIR's ``delta_passed`` from the δ file's ``passed``).
        region: the region ``g_c`` averages over: the ``"object"`` mask, or the ``"background"`` (its
            complement).
    """

    scenario: str
    role: str
    set: str
    rows: np.ndarray
    pairs: np.ndarray
    modes: tuple[str, ...]
    scores: tuple[str, ...] = ()
    random_baseline: bool = False
    pool_pairs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_key: Literal["row", "pair_index"] = "row"
    fields: tuple[tuple[str, str, Any], ...] = ()
    region: Literal["object", "background"] = "object"

    def shard(self, index: int, count: int) -> Leg:
        """The rows of shard ``index`` of ``count``: a disjoint deterministic split by pair key."""
        if count == 1:
            return self
        keep = (self.pairs % count) == index
        return replace(self, rows=self.rows[keep], pairs=self.pairs[keep])


def select_rows(view, split: Split, max_images: int | None, seed: int, set_name: str) -> np.ndarray:
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


def pair_index(view) -> np.ndarray:
    """The set's ``pair_index`` column (int64)."""
    return np.asarray(view.read("pair_index", None), dtype=np.int64)


def matched(view_a, rows_a: np.ndarray, view_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of set B paired (same ``pair_index``) with ``rows_a`` of set A: (rows_a kept, rows_b, pair keys)."""
    pa = pair_index(view_a)[rows_a]
    where = {int(p): i for i, p in enumerate(pair_index(view_b).tolist())}
    keep = np.array([int(p) in where for p in pa], dtype=bool)
    rows_b = np.array([where[int(p)] for p in pa[keep]], dtype=np.int64)
    return rows_a[keep], rows_b, pa[keep]


@dataclass
class PlanContext:
    """What a scenario plans with: the suite, the data, the models that exist, and the scenarios it skipped.

    Attributes:
        bam: an open :class:`~bamkit.evaluate.datasets.DataSets`.
        roles: the model roles whose checkpoints exist.
        skipped: scenario -> why it did not run (filled by :meth:`need`).
    """

    suite: Suite
    bam: Any
    roles: set[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def rows(self, set_name: str, split: str, max_images: int | None) -> np.ndarray:
        """The seeded row selection of ``set_name`` (:func:`select_rows` with the suite's seed)."""
        return select_rows(self.bam[set_name], split, max_images, self.suite.seed, set_name)

    def modes(self, scenario: str) -> tuple[str, ...]:
        """The ``to_saliency`` modes the suite's metrics of ``scenario`` read."""
        return self.suite.saliency_modes(scenario)

    def need(self, scenario: str, models: Sequence[str], sets: Sequence[str]) -> bool:
        """Whether ``scenario``'s models and sets all exist. When one is missing: an error naming what and how
        to supply it, or (``allow_missing``) a warning and False."""
        missing = [m for m in models if m not in self.roles]
        gone = [s for s in sets if not self.bam.has(s)]
        if missing:
            self.skipped[scenario] = f"model(s) {', '.join(missing)} not found"
        if gone:
            self.skipped[scenario] = f"set(s) {', '.join(gone)} not in the data file"
        if not (missing or gone):
            return True
        if not self.suite.allow_missing:
            raise DataError(missing_message(scenario, self.suite, missing, gone))
        log.warning("evaluate: skipping scenario %s: %s", scenario, self.skipped[scenario])
        return False


def missing_message(scenario: str, suite: Suite, models: Sequence[str], sets: Sequence[str]) -> str:
    """What ``scenario`` lacks and how to supply it (or to skip it on purpose)."""
    wanted = ", ".join(suite.metrics_of(scenario)) or scenario
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
