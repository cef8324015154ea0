"""Merging the shards of an evaluation into the results folder: per-image → per-pair → summary, plus the
verification result RMCS reads, the counts and the provenance (``summary.json``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from bamkit import atomic
from bamkit import config as cfg
from bamkit.data.h5 import BamFile
from bamkit.errors import DataError
from bamkit.evaluate import scenarios, tables
from bamkit.evaluate.findings import check_findings
from bamkit.evaluate.runner import sort_per_image
from bamkit.evaluate.shards import all_shards_done, shard_names
from bamkit.evaluate.suite import Suite
from bamkit.metrics.registry import METRICS
from bamkit.provenance import file_hash, json_hash, versions
from bamkit.verify.result import VerifyResult, load_result

log = logging.getLogger(__name__)


def merge_shards(suite: Suite, out: Path, count: int) -> Path:
    """Concatenate the shard tables, compute pairs and the summary, write every results file."""
    if count > 1 and not all_shards_done(out, count, suite):
        raise DataError(
            f"cannot merge {out}: not every shard of {count} finished for this suite; run the "
            "missing '--shard i/n' jobs (with the same suite) first"
        )
    per_image, metas = read_shards(out, count)
    return write_results(suite, out, per_image, metas)


def read_shards(folder: Path, count: int) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The per-image rows (sorted) and metadata of the ``count`` shards under ``folder/shards``."""
    frames, metas = [], []
    for n in shard_names(count):
        d = folder / "shards" / n
        try:
            frames.append(pd.read_csv(d / "per_image.csv"))
        except pd.errors.EmptyDataError:
            pass
        metas.append(json.loads((d / "meta.json").read_text()))
    return (sort_per_image(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()), metas


def once_results(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """What the scenarios computed once per evaluation (shard 0's), also from results written before the
    ``once`` section existed (TCAV's were under ``concept``)."""
    for m in metas:
        if m.get("once"):
            return dict(m["once"])
        if m.get("concept"):
            return {"concept": m["concept"]}
    return {}


def write_results(
    suite: Suite,
    out: Path,
    per_image: pd.DataFrame,
    metas: list[dict[str, Any]],
    extra_json: dict | None = None,
) -> Path:
    """Pairs, summary and every results file of ``per_image`` into ``out`` (``extra_json``: more sections of
    ``summary.json``, e.g. which methods ``bamkit score`` added)."""
    if per_image.empty:
        raise DataError(
            f"suite {suite.name!r} produced no rows: every scenario was skipped "
            f"({_skip_text(metas)}); check the models folder and the data file's sets"
        )
    pairs = scenarios.pair_table(per_image, suite)
    verify = verification(suite, out)
    once: dict[str, Any] = {}
    for m in metas:  # shard 0's, and a scored run's beside the run it extends
        for k, v in once_results([m]).items():
            once.setdefault(k, v)
    summary, extra = tables.summarize(
        pairs, suite, verify.acc_drop() if verify else None, per_image=per_image, once=once
    )
    tables.write_table(per_image, out / "per_image.csv")
    tables.write_table(pairs.frame, out / "per_pair.csv")
    tables.write_table(summary, out / "summary.csv")
    if extra.get("stability"):
        tables.write_table(pd.DataFrame(extra["stability"]["levels"]), out / "stability.csv")
    portable = portable_suite(suite, out)
    atomic.write_text(out / "suite.yaml", cfg.dump_yaml(portable))
    payload = {
        "suite": portable,
        "methods": [m.label for m in suite.methods],
        "summary": summary.to_dict(orient="records"),
        **extra,
        **(extra_json or {}),
        "skipped": {k: v for m in metas for k, v in m.get("skipped", {}).items()},
        "counts": _counts(per_image, pairs.frame),
        "verification": verify.to_dict() if verify else None,
        "provenance": _provenance(suite, metas),
        "seconds": sum(m.get("seconds", 0.0) for m in metas),
        "timings": [t for m in metas for t in m.get("timings", [])],
        # the maps this evaluation keeps in results/cache (float16 at each model's input side; sums over shards)
        "cache_bytes": sum(m.get("cache_bytes", 0) for m in metas),
        "execution": next((m["execution"] for m in metas if m.get("execution")), None),
        "scenarios": [sc.describe(suite) for sc in scenarios.wanted(suite)],
        "metric_info": metric_info(suite, summary),
        "findings": check_findings(summary, {m.label: m.name for m in suite.methods}),
    }
    tables.write_json(out / "summary.json", payload)
    return out


def metric_info(suite: Suite, summary) -> dict[str, Any]:
    """What the report needs of every metric in the leaderboard: its title with this run's settings, direction,
    scenario, baseline row and chance level (so a report renders without the code that registered it)."""
    out = {}
    for name in dict.fromkeys(summary["metric"]):
        if name not in METRICS:
            continue
        cls = METRICS.get(name)
        out[name] = {
            "title": cls.title_for(suite.metric_params(name)),
            "higher_is_better": cls.higher_is_better,
            "scenario": cls.scenario,
            "derived_from": cls.derived_from,
            "baseline": cls.baseline,
            "chance": cls.chance,
            "params": suite.metric_params(name),
        }
    return out


PATH_KEYS = ("data", "models", "patch_data", "verify")


def portable_suite(suite: Suite, out: Path) -> dict[str, Any]:
    """The suite as ``suite.yaml`` records it: its input files relative to the results folder when they lie in
    the run folder around it (``RUN/results``, ``RUN/scores/<labels>``: copied or moved whole, the run still
    works), else absolute; a method given as a file by its absolute path."""
    d = suite.to_dict()
    here = out.resolve()
    homes = (here.parent, here.parent.parent)
    for key in PATH_KEYS:
        if d.get(key):
            p = Path(d[key]).resolve()
            d[key] = os.path.relpath(p, here) if any(p.is_relative_to(h) for h in homes) else str(p)
    for spec, entry in zip(suite.methods, d["methods"]):
        mod, _, attr = spec.name.rpartition(":")
        if mod.endswith(".py") and spec.base is not None and not Path(mod).is_absolute():
            entry["name"] = f"{(Path(spec.base) / mod).resolve()}:{attr}"
    return d


def _skip_text(metas) -> str:
    sk = {k: v for m in metas for k, v in m.get("skipped", {}).items()}
    return "; ".join(f"{k}: {v}" for k, v in sk.items()) or "no scenario enabled"


def _counts(per_image: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
    c: dict[str, Any] = {"images": per_image.groupby("scenario")["image"].nunique().to_dict()}
    if "flag" in per_image:
        flag = per_image["flag"].fillna(0).astype(int)
        c["degenerate_maps"] = (flag > 0).groupby(per_image["method"]).sum().astype(int).to_dict()
    if "nonfinite" in per_image:  # maps, not rows: stability has a row per level of each image
        per_method: dict[str, int] = {}
        for (_, method), n in tables.nonfinite_counts(per_image).items():
            per_method[method] = per_method.get(method, 0) + n
        c["nonfinite_maps"] = per_method
    if len(pairs):
        c["pairs_included"] = pairs.groupby("metric")["included"].sum().astype(int).to_dict()
    return c


def verification(suite: Suite, out: Path) -> VerifyResult | None:
    """The ``bamkit verify`` result RMCS's accuracy drop comes from: the suite's ``verify`` file (an error when
    it cannot be read), else a ``verify.json`` found in the results folder or beside the models or data.

    Verification is never re-run here: without a result, RMCS uses the paper's accuracy drop, and says so.
    The result found is copied to ``out/verify.json``.
    """
    found = None
    if suite.verify:
        found = load_result(suite.verify)
    else:
        cands = [out / "verify.json"]
        for base in (suite.models, suite.data):
            if base:
                p = Path(base)
                cands += [p / "verify.json", p.parent / "verify.json", p.parent / "verify" / "verify.json"]
        for c in cands:
            if c.is_file():
                try:
                    found = load_result(c)
                    break
                except DataError as e:  # a stray unreadable file is not the user's request: say so, go on
                    log.warning("evaluate: ignoring %s", e)
    if found is None:
        if suite.scenario_enabled("rmcs"):
            log.warning(
                "evaluate: no verification result (verify.json); relative MCS uses the paper's accuracy drop "
                "(run 'bamkit verify' and pass --verify FILE to use your models' own)"
            )
        return None
    atomic.write_text(out / "verify.json", json.dumps(found.to_dict(), indent=1, default=str))
    return found


def _provenance(suite: Suite, metas: list[dict]) -> dict[str, Any]:
    with BamFile(suite.data) as bf:
        attrs = {k: v for k, v in bf.attrs.items() if k in ("seed", "schema_version", "bamkit_version")}
    patch = suite.patch_data if suite.patch_data and Path(suite.patch_data).is_file() else None
    return {
        "data": str(suite.data),
        "data_hash": file_hash(suite.data),
        "data_attrs": attrs,
        "patch_data": patch,
        "patch_data_hash": file_hash(patch) if patch else None,
        "models_dir": str(suite.models) if suite.models else None,
        "models": metas[0].get("models", {}),
        "suite_hash": json_hash(suite.to_dict()),
        "seed": suite.seed,
        "versions": versions(),
        "shards": len(metas),
    }
