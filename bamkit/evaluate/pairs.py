"""Per-pair metric values from the legs' per-image rows, computed by the functions the metric registry names.

For each BAM pair metric the two members' ``g_c`` are joined on (method, pair) and handed to the registry's
``per_pair`` function (the rows of ``per_pair.csv``) and to its ``function`` (the leaderboard value with its
sample size, a :class:`~bamkit.metrics.functional.Score`): MCS (f_o vs f_s), the random-region baselines, IDR
(with vs without the object), IIR and App. C (x vs x + δ), relative MCS (each f_k vs the reference, per k).
Every pair is kept only when both members are correctly classified (SPEC §1.4, the code's intersection) and
its value is defined. Per-image metrics (faithfulness) and stability means join as one row per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from bamkit.evaluate.stability import pair_rows as stability_pair_rows
from bamkit.evaluate.suite import Scenarios
from bamkit.metrics.functional import Score
from bamkit.metrics.registry import METRICS

COLUMNS = ["scenario", "metric", "method", "pair", "value", "included"]


@dataclass
class PairTable:
    """The long per-pair table and, for the pair metrics, the registry function's score per method.

    Attributes:
        frame: columns :data:`COLUMNS`.
        scores: (metric, method) -> Score from the metric's registered ``function``.
        excluded_delta: method -> IIR/App. C pairs left out because their δ failed the functional test.
    """

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    scores: dict[tuple[str, str], Score] = field(default_factory=dict)
    excluded_delta: dict[str, int] = field(default_factory=dict)
    parts: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def finish(self) -> PairTable:
        """Concatenate the collected parts into :attr:`frame`."""
        if self.parts:
            self.frame = pd.concat(self.parts, ignore_index=True)
        self.parts = []
        return self


def legs_of(per_image: pd.DataFrame, scenario: str, role: str, set_name: str) -> pd.DataFrame:
    d = per_image
    return d[(d["scenario"] == scenario) & (d["model"] == role) & (d["set"] == set_name)]


def join(a: pd.DataFrame, b: pd.DataFrame, col: str) -> pd.DataFrame:
    """Members a and b of each (method, pair): ``<col>_a``, ``<col>_b``, ``correct_a``, ``correct_b`` (and
    ``delta_passed`` when member b is a δ-patched image)."""
    keys = ["method", "pair"]
    cols = [*keys, col, "correct"]
    extra = ["delta_passed"] if "delta_passed" in b and b["delta_passed"].notna().any() else []
    return a[cols].merge(b[cols + extra], on=keys, suffixes=("_a", "_b"))


def pair_metric(
    name: str, j: pd.DataFrame, col: str, scenario: str, out: PairTable, label: str | None = None, **kw: Any
) -> None:
    """Add metric ``name`` over the joined members ``j`` to ``out``: per-pair values by the registry's
    ``per_pair`` function, one score per method by its ``function`` (``kw``: the metric's parameters). Relative
    MCS is scored over all k at once (:func:`bamkit.evaluate.tables.rmcs_rows`), so only its pairs are added."""
    cls = METRICS.get(name)
    per_pair = cls.resolve_per_pair()
    a = torch.tensor(j[f"{col}_a"].to_numpy(float))
    b = torch.tensor(j[f"{col}_b"].to_numpy(float))
    correct = torch.tensor((j["correct_a"] & j["correct_b"]).to_numpy(bool))
    if "delta_passed" in j:  # BAM §4.4: only pairs whose δ passed; the others are counted, not scored
        passed = torch.tensor(j["delta_passed"].fillna(False).to_numpy(bool))
        out.excluded_delta.update({m: int((~passed[torch.from_numpy(j["method"].to_numpy() == m)]).sum())
                                   for m in j["method"].unique()})  # fmt: skip
        correct = correct & passed
    correct = correct & torch.isfinite(a) & torch.isfinite(b)  # NaN: a member's map was non-finite (runner)
    value = per_pair(a, b, **kw).double()
    included = correct & torch.isfinite(value)
    label = label or name
    out.parts.append(
        pd.DataFrame(
            {
                "scenario": scenario,
                "metric": label,
                "method": j["method"].to_numpy(),
                "pair": j["pair"].to_numpy(),
                "value": value.numpy(),
                "included": included.numpy(),
            }
        )
    )
    if cls.per != "pair":
        return
    score = cls.resolve()
    methods = j["method"].to_numpy()
    for m in dict.fromkeys(methods.tolist()):
        sel = torch.from_numpy(methods == m)
        out.scores[(label, m)] = score(a[sel], b[sel], correct[sel], **kw)


def pair_table(per_image: pd.DataFrame, scenarios: Scenarios, metrics: tuple[str, ...]) -> PairTable:
    """Per-pair metric values (long format, :data:`COLUMNS`) and the pair metrics' scores.

    ``included`` is the correctness filter of SPEC §1.4 (both members right) and a defined value.
    """
    out = PairTable()
    sc = scenarios
    has = set(per_image["scenario"]) if len(per_image) else set()
    want = set(metrics)
    if "mcs" in want and "mcs" in has:
        a = legs_of(per_image, "mcs", sc.mcs.models[0], sc.mcs.set)
        b = legs_of(per_image, "mcs", sc.mcs.models[1], sc.mcs.set)
        for col, name in (("g_c", "mcs"), ("g_c_random", "mcs_random")):
            if col in a and a[col].notna().any():
                pair_metric(name, join(a, b, col), col, "mcs", out)
    if "rmcs" in want and "rmcs" in has:
        ref = legs_of(per_image, "rmcs", sc.rmcs.reference, sc.rmcs.set)
        for role in sc.rmcs.models:
            a = legs_of(per_image, "rmcs", role, sc.rmcs.set)
            if not a.empty:
                pair_metric(
                    "rmcs", join(a, ref, "g_c"), "g_c", "rmcs", out, f"rmcs_{role.removeprefix('f_')}"
                )
    if "idr" in want and "idr" in has:
        with_cf = legs_of(per_image, "idr", sc.idr.model, sc.idr.set)
        without = legs_of(per_image, "idr", sc.idr.model, sc.idr.paired_set)
        for col, name in (("g_c", "idr"), ("g_c_random", "idr_random")):
            if col in with_cf and with_cf[col].notna().any():
                pair_metric(name, join(with_cf, without, col), col, "idr", out)
    if {"iir", "attribution_change"} & want and "iir" in has:
        j = join(
            legs_of(per_image, "iir", sc.iir.model, sc.iir.set),
            legs_of(per_image, "iir", sc.iir.model, sc.iir.paired_set),
            "g_c",
        )
        if "iir" in want:  # |Δ| < t·g_c(x): a pair with g_c(x) = 0 fails (SPEC §3.3)
            pair_metric("iir", j, "g_c", "iir", out, t=sc.iir.t)
        if "attribution_change" in want:
            pair_metric("attribution_change", j, "g_c", "iir", out)
    out.parts += _image_rows(per_image, metrics)
    if "protocol" in per_image:
        st = stability_pair_rows(per_image, sc.stability)
        if len(st):
            out.parts.append(st)
    return out.finish()


def _image_rows(per_image: pd.DataFrame, metrics: tuple[str, ...]) -> list[pd.DataFrame]:
    """Per-image metrics as one row per image (faithfulness) and the stability means over the levels."""
    frames = []
    f = per_image[per_image["scenario"] == "faithfulness"] if len(per_image) else per_image
    for m in metrics:
        if m in METRICS and METRICS.get(m).scenario == "faithfulness" and m in f and not f.empty:
            v = f[m].to_numpy(float)
            frames.append(
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
    return frames
