"""The evaluate stage's entry points: a suite file (``bamkit evaluate``) or a validated suite into a results
folder, in one process, split across ``--shard i/n`` jobs, or across Lightning Fabric ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bamkit.errors import ConfigError, DataError
from bamkit.evaluate.distributed import launch
from bamkit.evaluate.merge import merge_shards
from bamkit.evaluate.shards import all_shards_done, check_recompute, parse_shard, run_shard, shard_name
from bamkit.evaluate.suite import Suite
from bamkit.evaluate.validate import load_suite
from bamkit.locks import output_lock


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
    allow_missing: bool | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    force: bool = False,
    recompute: tuple[str, ...] | list[str] = (),
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
        allow_missing: skip (instead of failing on) scenarios whose models or sets are absent.
        overrides: ``--set KEY=VALUE`` values for keys of the suite.
        force: compute every map again (the results folder's cache is cleared first).
        recompute: labels of methods whose maps are computed again (``--recompute LABEL``).
    """
    suite = load_suite(
        suite_path,
        data=data,
        models=models,
        methods=methods,
        patch_data=patch_data,
        verify=verify,
        smoke=smoke,
        allow_missing=allow_missing,
        overrides=overrides,
    )
    out_dir = Path(out) if out is not None else Path("results") / suite.name
    return evaluate(suite, out_dir, shard=parse_shard(shard), force=force, recompute=tuple(recompute))


def evaluate(
    suite: Suite,
    out: str | Path,
    shard: tuple[int, int] = (0, 1),
    loaded_models: dict[str, Any] | None = None,
    force: bool = False,
    recompute: tuple[str, ...] = (),
) -> Path:
    """Evaluate a validated suite (see :func:`run_suite`); ``loaded_models`` (role -> (module, meta)) skips
    loading checkpoints (notebooks, tests); ``force`` computes every map again instead of reading the folder's
    attribution cache, ``recompute`` the maps of the methods with those labels."""
    out = Path(out)
    check_recompute(recompute, [m.label for m in suite.methods])
    if suite.data is None:
        raise ConfigError(f"suite {suite.name!r} names no dataset file; set 'data:' or pass --data FILE.h5")
    if not Path(suite.data).is_file():
        raise DataError(
            f"dataset file {suite.data!r} does not exist; build it with 'bamkit build' or pass --data"
        )
    if loaded_models is None and suite.models is None:
        raise ConfigError(f"suite {suite.name!r} names no models folder; set 'models:' or pass --models DIR")
    out.mkdir(parents=True, exist_ok=True)
    if force:
        clear_cache(out, shard)
    e = suite.execution
    world = e.devices * e.num_nodes
    if world > 1:
        is_main = launch(suite, out, shard, loaded_models, recompute)
    else:
        with output_lock(out / "shards" / shard_name(*shard), f"shard {shard[0]}/{shard[1]} of the results"):
            run_shard(suite, out, shard[0], shard[1], loaded_models, recompute=recompute)
        is_main = True
    count = shard[1] * max(world, 1)
    if is_main and (shard[1] == 1 or all_shards_done(out, count, suite)):
        with output_lock(out, "results folder", folder=True):
            merge_shards(suite, out, count)
    return out


def clear_cache(out: Path, shard: tuple[int, int]) -> None:
    """Remove the results folder's attribution cache and shard tables (``--force``), under the folder's lock.
    Not with ``--shard``: the other jobs of the array may be reading and writing them."""
    import shutil

    if shard[1] > 1:
        raise ConfigError(
            "--force clears the attribution cache that the other --shard jobs share; clear it once without "
            f"--shard (bamkit evaluate ... --force), or delete {out / 'cache'} before starting the jobs"
        )
    with output_lock(out, "results folder", folder=True):
        for sub in ("cache", "shards"):
            shutil.rmtree(out / sub, ignore_errors=True)
