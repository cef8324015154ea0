"""One shard of an evaluation: ``--shard i/n`` job-array tasks and Fabric ranks each evaluate a disjoint part of
every leg's rows in their own process and write ``shards/<name>/per_image.csv`` and ``meta.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bamkit import atomic
from bamkit.errors import ConfigError
from bamkit.evaluate import scenarios
from bamkit.evaluate.cache import AttributionCache
from bamkit.evaluate.datasets import DataSets
from bamkit.evaluate.runner import LoadedModel, ShardRunner, all_roles, load_models
from bamkit.evaluate.suite import Suite
from bamkit.provenance import json_hash


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


def shard_name(i: int, n: int) -> str:
    """The folder (and cache file) of shard ``i`` of ``n``; an unsplit run is ``main``."""
    return "main" if n == 1 else f"shard{i}of{n}"


def shard_names(count: int) -> list[str]:
    """The shard folders of a run split ``count`` ways (``main`` for an unsplit run)."""
    return [shard_name(i, count) for i in range(count)]


def check_recompute(recompute: tuple[str, ...] | list[str], labels: list[str]) -> None:
    """``--recompute`` names methods being computed here (``labels``); anything else is a ConfigError."""
    unknown = [r for r in recompute if r not in labels]
    if unknown:
        raise ConfigError(
            f"--recompute {unknown[0]}: no method being computed is labelled so; the labels: {', '.join(labels)}"
        )


def run_shard(
    suite: Suite,
    out: Path,
    index: int,
    count: int,
    loaded_models: dict[str, Any] | None,
    device=None,
    concurrent: tuple[str, ...] = (),
    read_only: tuple[Path, ...] = (),
    recompute: tuple[str, ...] = (),
) -> Path:
    """Evaluate shard ``index`` of ``count`` in this process; write ``shards/<name>/per_image.csv``.

    Args:
        read_only: other attribution caches to read (a finished run's, for ``bamkit score``).
        recompute: labels of methods whose cached maps are forgotten and computed again (``--recompute``).
    """
    t0 = time.perf_counter()
    if loaded_models is not None:
        models = {r: LoadedModel(*m) if isinstance(m, tuple) else m for r, m in loaded_models.items()}
    else:
        models = load_models(suite, suite.models, all_roles(suite))
    device = device if device is not None else suite.execution.device
    if device is not None:
        for m in models.values():
            m.module.to(device)
    name = shard_name(index, count)
    with (
        DataSets(suite.data, (suite.patch_data,)) as bam,
        AttributionCache(out / "cache", name, concurrent, read_only) as cache,
    ):
        runner = ShardRunner(suite, bam, models, cache, index, count, examples_dir=out / "examples")
        for m in suite.methods:
            if m.label in recompute:  # maps off the exact path are cached under the key with its suffix
                cache.recompute(m.key)
                if runner.key_suffix:
                    cache.recompute(m.key + runner.key_suffix)
        df = runner.run()
        skipped, timings, execution = runner.skipped, runner.timings, runner.exec_record
        # what scores whole sets rather than rows (TCAV) runs once per evaluation, in shard 0
        once = {}
        if index == 0:
            for sc in scenarios.wanted(suite):
                done = sc.run_once(suite, bam, models, runner.opts, cache)
                if done:
                    once[sc.name] = done
    d = out / "shards" / name
    d.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(d / "per_image.csv") as tmp:
        df.to_csv(tmp, index=False)
    meta = {
        "shard": [index, count],
        "suite_hash": json_hash(suite.to_dict()),
        "seconds": time.perf_counter() - t0,
        "skipped": skipped,
        "timings": timings,
        "cache_bytes": runner.cache_estimate,
        "execution": execution,
        "once": once,
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


def all_shards_done(out: Path, count: int, suite: Suite) -> bool:
    """Every shard of this count finished *for this suite* (a stale shard of an edited suite does not count)."""
    want = json_hash(suite.to_dict())
    for name in shard_names(count):
        p = out / "shards" / name / "meta.json"
        if not p.is_file() or json.loads(p.read_text()).get("suite_hash") != want:
            return False
    return True
