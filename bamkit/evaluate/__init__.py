"""The evaluate stage: a suite's attributions and metrics into a results folder (``bamkit evaluate``).

Results folder::

    suite.yaml          the resolved, validated suite
    per_image.csv       tidy per-image table (+ .parquet with pyarrow)
    per_pair.csv        per-pair BAM metric values with the correctness filter
    stability.csv       mean Kendall τ and cosine per method × protocol × level (stability scenario)
    summary.csv         leaderboard: metric × method, value, trials mean/std, 95 % CI, rank
    summary.json        everything the report reads (+ paired tests, ranking agreement, provenance)
    verify.json         the verification result used for RMCS's accuracy drop (when found or computed)
    cache/*.h5          the attribution cache (one file per writer process)
    examples/           one input per scenario with every method's map (saliency grids)
    shards/             per-shard tables of ``--shard i/n`` and multi-process runs (merged when complete)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bamkit import atomic
from bamkit.errors import ConfigError, DataError
from bamkit.evaluate.suite import Suite, load_suite

log = logging.getLogger(__name__)

__all__ = ["run_suite", "evaluate", "parse_shard", "merge_shards", "Suite", "load_suite"]


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` (0-based i) -> (i, n); None -> (0, 1)."""
    if shard is None:
        return 0, 1
    if isinstance(shard, tuple):
        i, n = shard
    else:
        try:
            a, b = str(shard).split("/")
            i, n = int(a), int(b)
        except ValueError:
            raise ConfigError(f"--shard {shard!r}: expected 'i/n' with 0 <= i < n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {i}/{n}: expected 0 <= i < n and n >= 1")
    return i, n


def _shard_name(i: int, n: int) -> str:
    return f"shard{i}of{n}"


def run_suite(
    suite_path: str | Path,
    data: str | Path | None = None,
    models: str | Path | None = None,
    out: str | Path | None = None,
    methods: tuple[str, ...] | list[str] = (),
    shard: str | tuple[int, int] | None = None,
    patch_data: str | Path | None = None,
    verify: str | Path | None = None,
    smoke: bool | None = None,
) -> Path:
    """Evaluate a suite into a results folder; return the folder.

    Args:
        suite_path: ``evaluate/<suite>.yaml``.
        data, models: override the suite's dataset file and models folder.
        out: the results folder (default ``results/<suite name>``).
        methods: extra methods (registered names or ``module:callable``) scored beside the suite's.
        shard: ``"i/n"``: evaluate only shard i of n (job arrays); the tables are merged and summarised by
            whichever shard finishes last (or by a later run without ``--shard``, from the cache).
        patch_data: a second dataset file holding sets the main one lacks (``bamkit delta --out``'s
            ``bamboo_forest_patch``).
        verify: the ``bamkit verify`` JSON (RMCS's accuracy drop; shown in the report).
        smoke: shrink the suite (its ``smoke`` switch) for a quick wiring check.
    """
    suite = load_suite(
        suite_path,
        data=data,
        models=models,
        methods=methods,
        patch_data=patch_data,
        verify=verify,
        smoke=smoke,
    )
    out_dir = Path(out) if out is not None else Path("results") / suite.name
    return evaluate(suite, out_dir, shard=parse_shard(shard))


def evaluate(
    suite: Suite,
    out: str | Path,
    shard: tuple[int, int] = (0, 1),
    loaded_models: dict[str, Any] | None = None,
) -> Path:
    """Evaluate a validated suite (see :func:`run_suite`); ``loaded_models`` (role -> (module, meta)) skips
    loading checkpoints (notebooks, tests)."""
    out = Path(out)
    if suite.data is None:
        raise ConfigError(f"suite {suite.name!r} names no dataset file; set 'data:' or pass --data FILE.h5")
    if not Path(suite.data).is_file():
        raise DataError(
            f"dataset file {suite.data!r} does not exist; build it with 'bamkit build' or pass --data"
        )
    if loaded_models is None and suite.models is None:
        raise ConfigError(f"suite {suite.name!r} names no models folder; set 'models:' or pass --models DIR")
    out.mkdir(parents=True, exist_ok=True)
    e = suite.execution
    world = e.devices * e.num_nodes
    if world > 1:
        from bamkit.evaluate.distributed import launch

        is_main = launch(suite, out, shard, loaded_models)
    else:
        _run_shard(suite, out, shard[0], shard[1], loaded_models)
        is_main = True
    if is_main and (shard[1] == 1 or _all_shards_done(out, shard[1] * max(world, 1), suite)):
        merge_shards(suite, out, shard[1] * max(world, 1))
    return out


def _run_shard(
    suite: Suite,
    out: Path,
    index: int,
    count: int,
    loaded_models: dict[str, Any] | None,
    device=None,
    concurrent: tuple[str, ...] = (),
) -> Path:
    """Evaluate shard ``index`` of ``count`` in this process; write ``shards/<name>/per_image.csv``."""
    from bamkit.evaluate.cache import AttributionCache
    from bamkit.evaluate.runner import DataSets, LoadedModel, ShardRunner, all_roles, load_models

    t0 = time.perf_counter()
    if loaded_models is not None:
        models = {r: LoadedModel(*m) if isinstance(m, tuple) else m for r, m in loaded_models.items()}
    else:
        models = load_models(suite, suite.models, all_roles(suite))
    device = device if device is not None else suite.execution.device
    if device is not None:
        for m in models.values():
            m.module.to(device)
    name = "main" if count == 1 else _shard_name(index, count)
    with (
        DataSets(suite.data, (suite.patch_data,)) as bam,
        AttributionCache(out / "cache", name, concurrent) as cache,
    ):
        runner = ShardRunner(suite, bam, models, cache, index, count, examples_dir=out / "examples")
        df = runner.run()
        skipped, timings = runner.skipped, runner.timings
    d = out / "shards" / name
    d.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(d / "per_image.csv") as tmp:
        df.to_csv(tmp, index=False)
    from bamkit.provenance import json_hash

    meta = {
        "shard": [index, count],
        "suite_hash": json_hash(suite.to_dict()),
        "seconds": time.perf_counter() - t0,
        "skipped": skipped,
        "timings": timings,
        "models": {
            r: {
                "file": f"{suite.role_file(r)}.ckpt",
                "checkpoint_hash": m.meta.checkpoint_hash,
                "data_hash": getattr(m.meta, "data_hash", ""),
                "arch": getattr(m.meta, "arch", ""),
                "train_set": getattr(m.meta, "train_set", ""),
                "class_names": list(m.meta.class_names),
            }
            for r, m in models.items()
        },
    }
    atomic.write_text(d / "meta.json", json.dumps(meta, indent=1))
    return d


def _all_shards_done(out: Path, count: int, suite: Suite) -> bool:
    """Every shard of this count finished *for this suite* (a stale shard of an edited suite does not count)."""
    from bamkit.provenance import json_hash

    want = json_hash(suite.to_dict())
    for i in range(count):
        p = out / "shards" / _shard_name(i, count) / "meta.json"
        if not p.is_file() or json.loads(p.read_text()).get("suite_hash") != want:
            return False
    return True


def merge_shards(suite: Suite, out: Path, count: int) -> Path:
    """Concatenate the shard tables, compute pairs and the summary, write every results file."""
    from bamkit.evaluate import tables
    from bamkit.evaluate.runner import sort_per_image
    from bamkit.evaluate.scenarios import pair_table

    names = ["main"] if count == 1 else [_shard_name(i, count) for i in range(count)]
    if count > 1 and not _all_shards_done(out, count, suite):
        raise DataError(
            f"cannot merge {out}: not every shard of {count} finished for this suite; run the "
            "missing '--shard i/n' jobs (with the same suite) first"
        )
    frames, metas = [], []
    for n in names:
        d = out / "shards" / n
        try:
            frames.append(pd.read_csv(d / "per_image.csv"))
        except pd.errors.EmptyDataError:
            pass
        metas.append(json.loads((d / "meta.json").read_text()))
    per_image = sort_per_image(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()
    if per_image.empty:
        raise DataError(
            f"suite {suite.name!r} produced no rows: every scenario was skipped "
            f"({_skip_text(metas)}); check the models folder and the data file's sets"
        )
    pairs = pair_table(per_image, suite)
    verify = _verification(suite, out)
    acc_drop = _acc_drop(verify)
    summary, extra = tables.summarize(pairs, suite, acc_drop, per_image=per_image)
    tables.write_table(per_image, out / "per_image.csv")
    tables.write_table(pairs, out / "per_pair.csv")
    tables.write_table(summary, out / "summary.csv")
    if extra.get("stability"):
        tables.write_table(pd.DataFrame(extra["stability"]["levels"]), out / "stability.csv")
    from bamkit import config as cfg

    atomic.write_text(out / "suite.yaml", cfg.dump_yaml(suite.to_dict()))
    payload = {
        "suite": suite.to_dict(),
        "methods": [m.label for m in suite.methods],
        "summary": summary.to_dict(orient="records"),
        **extra,
        "skipped": {k: v for m in metas for k, v in m.get("skipped", {}).items()},
        "counts": _counts(per_image, pairs),
        "verification": verify,
        "provenance": _provenance(suite, metas),
        "seconds": sum(m.get("seconds", 0.0) for m in metas),
        "timings": [t for m in metas for t in m.get("timings", [])],
    }
    tables.write_json(out / "summary.json", payload)
    return out


def _skip_text(metas) -> str:
    sk = {k: v for m in metas for k, v in m.get("skipped", {}).items()}
    return "; ".join(f"{k}: {v}" for k, v in sk.items()) or "no scenario enabled"


def _counts(per_image: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
    c: dict[str, Any] = {"images": per_image.groupby("scenario")["image"].nunique().to_dict()}
    if "flag" in per_image:
        c["degenerate_maps"] = per_image.groupby("method")["flag"].sum().astype(int).to_dict()
    if len(pairs):
        c["pairs_included"] = pairs.groupby("metric")["included"].sum().astype(int).to_dict()
    return c


def _verification(suite: Suite, out: Path) -> dict[str, Any] | None:
    """The verification JSON: ``out/verify.json`` or one beside the models/data, else recomputed."""
    cands = [Path(suite.verify)] if suite.verify else []
    cands.append(out / "verify.json")
    for base in (suite.models, suite.data):
        if base:
            p = Path(base)
            cands += [p / "verify.json", p.parent / "verify.json", p.parent / "verify" / "verify.json"]
    for c in cands:
        if c.is_file():
            try:
                v = json.loads(c.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if c != out / "verify.json":
                atomic.write_text(out / "verify.json", json.dumps(v, indent=1))
            return v
    if suite.models is None or not suite.scenario_enabled("rmcs"):
        return None
    try:
        from bamkit.train.verify import verify_models

        v = verify_models(suite.data, suite.models).to_dict()
    except (ImportError, DataError) as e:  # verification is optional context; RMCS falls back to the paper
        log.warning("evaluate: no verification result (%s); RMCS uses the paper's accuracy drop", e)
        return None
    atomic.write_text(out / "verify.json", json.dumps(v, indent=1, default=str))
    return v


def _acc_drop(verify: dict[str, Any] | None) -> dict[float, float] | None:
    """k -> accuracy drop (percentage points) from a verification dict, whatever the nesting."""
    if not verify:
        return None
    found: dict[float, float] = {}

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if "k" in o and any(key in o for key in ("drop", "acc_drop", "accuracy_drop")):
                val = next(o[key] for key in ("drop", "acc_drop", "accuracy_drop") if key in o)
                try:
                    found[round(float(o["k"]), 1)] = float(val)
                except (TypeError, ValueError):
                    pass
            for key in ("acc_drop", "accuracy_drop", "drop"):
                if isinstance(o.get(key), dict):
                    for k, v in o[key].items():
                        try:
                            found[round(float(str(k).removeprefix("k").removeprefix("f_k")), 1)] = float(v)
                        except (TypeError, ValueError):
                            pass
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(verify)
    if found and max(abs(v) for v in found.values()) <= 1.0:  # fractions -> percentage points, as the paper
        found = {k: 100.0 * v for k, v in found.items()}
    return found or None


def _provenance(suite: Suite, metas: list[dict]) -> dict[str, Any]:
    from bamkit.data.h5 import BamFile
    from bamkit.provenance import file_hash, json_hash, versions

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
