"""``bamkit score RUN METHOD [METHOD ...]``: your attribution methods scored against BAM beside a finished run's
methods (docs/score-your-method.md).

Everything comes from the finished run: its suite (``results/suite.yaml``: data, models, δ file and
verification, recorded relative to the results folder so a copied or moved run folder works), its per-image
rows for the methods it already scored, and its attribution cache, TCAV scores included. Only the new methods'
maps are computed, in every scenario of the run's suite; their rows join the run's, and the tables, the paired
tests and the report are computed over all of them into a folder of their own (``RUN/scores/<labels>`` unless
told otherwise). The run's own results are left as they are unless ``in_place``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from bamkit import config as cfg
from bamkit.errors import ConfigError, DataError
from bamkit.evaluate import scenarios
from bamkit.evaluate.merge import PATH_KEYS, once_results, read_shards, write_results
from bamkit.evaluate.methods import MethodSpec
from bamkit.evaluate.runner import sort_per_image
from bamkit.evaluate.scenarios import Scenario
from bamkit.evaluate.shards import check_recompute, run_shard, shard_name
from bamkit.evaluate.suite import Suite, parse
from bamkit.evaluate.validate import validate, validate_method, with_methods
from bamkit.locks import output_lock

log = logging.getLogger(__name__)


def results_folder(run: str | Path) -> Path:
    """The results folder of ``run``: a run folder (``bamkit run --out``, holding ``results/``) or a results
    folder itself (``bamkit evaluate --out``)."""
    run = Path(run)
    for candidate in (run / "results", run):
        if (candidate / "suite.yaml").is_file() and (candidate / "per_image.csv").is_file():
            return candidate
    raise DataError(
        f"{str(run)!r} is not a finished run: it holds no results/suite.yaml and per_image.csv; pass the folder "
        "'bamkit run --out' wrote (or the one 'bamkit evaluate --out' wrote), after it finished"
    )


def run_suite_of(results: Path, overrides: tuple[str, ...] = ()) -> Suite:
    """The suite a finished evaluation ran, its input files resolved against the results folder."""
    where = str(results / "suite.yaml")

    def build(raw: dict[str, Any], w: str) -> Suite:
        raw = _moved_settings(dict(raw))
        for key in PATH_KEYS:
            if raw.get(key) and not Path(raw[key]).is_absolute():
                raw[key] = str((results / raw[key]).resolve())
        return parse(raw, w, base=results)

    suite = cfg.overridden(cfg.load_yaml(results / "suite.yaml"), overrides, build, where)
    for key in ("data", "models"):
        p = getattr(suite, key)
        if p is None or not Path(p).exists():
            raise DataError(
                f"{where}: its {key} {p!r} is not there any more; score the run where its data and models are, or "
                f"copy the whole run folder (the results folder records them relative to itself)"
            )
    if suite.patch_data and not Path(suite.patch_data).is_file():
        log.warning("score: the run's δ file %s is gone; IIR and App. C are skipped", suite.patch_data)
        suite = replace(suite, patch_data=None, allow_missing=True)
    if (results / "verify.json").is_file():
        suite = replace(suite, verify=str(results / "verify.json"))
    return suite


# where results folders written by bamkit 0.1 kept metric settings: scenario -> key -> (metric, parameter)
_OLD_KEYS = {
    "iir": {"t": ("iir", "t")},
    "faithfulness": {"lower_bound": ("rcap", "lower_bound"), "interval": ("rcap", "interval"),
                     "auc_protocol": ("dauc", "protocol")},
}  # fmt: skip


def _moved_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A suite recorded by bamkit 0.1 (metric settings under their scenario) in today's form: each setting
    moves to its metric's entry (the AUC protocol to both DAUC and IAUC), so older runs can be scored."""
    scen = {k: dict(v or {}) for k, v in (raw.get("scenarios") or {}).items()}
    metrics = [m if isinstance(m, dict) else {"name": m} for m in raw.get("metrics", [])]
    for name, keys in _OLD_KEYS.items():
        for key, (metric, param) in keys.items():
            if key not in scen.get(name, {}):
                continue
            value = scen[name].pop(key)
            for m in metrics:
                if m["name"] == metric or (param == "protocol" and m["name"] == "iauc"):
                    m[param] = value
    if scen:
        raw["scenarios"] = scen
    if metrics:
        raw["metrics"] = [m if len(m) > 1 else m["name"] for m in metrics]
    return raw


def _slug(labels: list[str]) -> str:
    return re.sub(r"[^\w.-]+", "_", "+".join(labels))[:80] or "methods"


def score_methods(
    run: str | Path,
    methods: list[str] | tuple[str, ...],
    out: str | Path | None = None,
    in_place: bool = False,
    recompute: tuple[str, ...] = (),
    force: bool = False,
    overrides: tuple[str, ...] = (),
) -> Path:
    """Score ``methods`` (``[LABEL=]package.module:callable``, ``./file.py:callable``, a captum class such as
    ``captum.attr:Saliency``, or a registered name) beside the finished run ``run``; return the results folder.

    Args:
        out: the results folder (default ``<run>/scores/<labels>``).
        in_place: write into the run's own results folder instead (its tables then hold the new methods).
        recompute: labels of new methods whose cached maps are computed again; ``force``: all of them.
        overrides: ``--set execution.KEY=VALUE`` (how the new maps are computed: ``execution.batch_size=16``);
            anything else would no longer match the run's rows, which are reused.
    """
    t0 = time.perf_counter()
    for o in overrides:  # the run's rows are reused: only how the new maps are computed may change
        if not o.strip().lstrip("-").startswith("execution."):
            raise ConfigError(
                f"--set {o}: bamkit score keeps the run's suite (its rows are reused as they are); only execution.* "
                "settings may change here. To score other settings, evaluate a suite with them (bamkit evaluate)"
            )
    results = results_folder(run)
    base = run_suite_of(results, tuple(overrides))
    if not methods:
        raise ConfigError("bamkit score: name at least one method to score (package.module:callable)")
    new = []
    for m in methods:
        spec = MethodSpec.parse(m, f"method {m}")
        validate_method(spec, f"method {m}")
        if any(b.label == spec.label for b in base.methods):
            raise ConfigError(
                f"method {m}: the run already has a method labelled {spec.label!r}; give yours another label: "
                f"MYLABEL={spec.name}"
            )
        new.append(spec)
    suite = validate(replace(base, methods=with_methods(base.methods, new)), str(results / "suite.yaml"))
    labels = [s.label for s in new]
    check_recompute(recompute, labels)
    dest = results if in_place else Path(out) if out is not None else Path(run) / "scores" / _slug(labels)
    dest.mkdir(parents=True, exist_ok=True)
    with output_lock(dest, "results folder", folder=True):
        # 1. the new methods alone, every scenario of the run's suite, the run's cache read (never written)
        only_new = replace(suite, methods=tuple(new))
        work = dest / "scored"
        run_shard(only_new, work, 0, 1, None, read_only=(results / "cache",),
                  recompute=tuple(labels) if force else tuple(recompute))  # fmt: skip
        new_rows, new_metas = read_shards(work, 1)
        # 2. the run's rows for the methods it scored (the same values its tables came from)
        run_rows = pd.read_csv(results / "per_image.csv")
        run_rows = run_rows[run_rows["method"].isin([m.label for m in base.methods])]
        per_image = sort_per_image(pd.concat([run_rows, new_rows], ignore_index=True))
        once = _run_once(results, suite, work)
        metas = [*new_metas, {"once": once}]
        if not in_place:
            _merge_examples(results / "examples", work / "examples", dest / "examples")
        extra = {
            "scored": {"methods": labels, "run": str(results.resolve()), "seconds": time.perf_counter() - t0}
        }
        write_results(suite, dest, per_image, metas, extra)
    return dest


def _run_once(results: Path, suite: Suite, work: Path) -> dict[str, Any]:
    """What the run's scenarios computed once per evaluation (TCAV's scores): from its shards' metadata, else
    through each scenario's own ``run_once`` with the run's cache read, where the run left those results, so
    nothing is computed again."""
    import json

    metas = [json.loads(p.read_text()) for p in sorted((results / "shards").glob("*/meta.json"))]
    once = once_results(metas)
    todo = [sc for sc in scenarios.wanted(suite) if type(sc).run_once is not Scenario.run_once]
    if once or not todo:
        return once
    from bamkit.evaluate.cache import AttributionCache
    from bamkit.evaluate.datasets import DataSets
    from bamkit.evaluate.execution import exec_options
    from bamkit.evaluate.runner import all_roles, load_models

    models = load_models(suite, suite.models, all_roles(suite))
    opts = exec_options(suite.execution)
    with (
        DataSets(suite.data, (suite.patch_data,)) as bam,
        AttributionCache(work / "cache", shard_name(0, 1), (), (results / "cache",)) as cache,
    ):
        done = {sc.name: sc.run_once(suite, bam, models, opts, cache) for sc in todo}
    return {name: d for name, d in done.items() if d}


def _merge_examples(run: Path, new: Path, dest: Path) -> None:
    """The report's saliency-grid examples: the run's (its methods' maps) with the new methods' beside them."""
    import shutil

    for src in (run, new):
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
