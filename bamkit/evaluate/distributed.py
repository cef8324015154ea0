"""Multi-process evaluation on Lightning Fabric: ``devices`` × ``num_nodes`` ranks, each a disjoint shard.

Each rank loads the models on its own device (Fabric's choice from the suite's ``accelerator``/``devices``),
evaluates shard ``shard_i · world + rank`` of ``shard_n · world``, writes its own cache file and shard table,
and rank 0 merges after a barrier. Because per-image seeds depend only on (suite seed, set, row), the merged
tables equal a single-process run.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from bamkit.evaluate.shards import run_shard, shard_name
from bamkit.evaluate.suite import Suite

log = logging.getLogger(__name__)


def _rank_main(
    fabric,
    suite: Suite,
    out: Path,
    shard: tuple[int, int],
    loaded_models: dict[str, Any] | None,
    recompute=(),
):
    world = fabric.world_size
    index, count = shard[0] * world + fabric.global_rank, shard[1] * world
    others = tuple(shard_name(i, count) for i in range(count) if i != index)
    run_shard(
        suite, out, index, count, loaded_models, device=fabric.device, concurrent=others, recompute=recompute
    )
    fabric.barrier()


def launch(
    suite: Suite, out: Path, shard: tuple[int, int], loaded_models: dict[str, Any] | None, recompute=()
) -> bool:
    """Run every rank of the suite's Fabric configuration and wait for all of them.

    Returns:
        whether this process should merge the shards: the launching process under ``ddp_spawn``, global
        rank 0 under launchers that re-run the command in every process (``ddp`` from the CLI, SLURM).
    """
    from lightning_fabric import Fabric

    e = suite.execution
    strategy = e.strategy
    if strategy == "auto" and e.accelerator in ("cpu",):
        strategy = "ddp_spawn"  # the subprocess launcher re-runs sys.argv, which a library call cannot assume
    fabric = Fabric(accelerator=e.accelerator, devices=e.devices, num_nodes=e.num_nodes, strategy=strategy)
    # a partial, not *args: Fabric moves launch arguments to the device and refuses frozen dataclasses
    fabric.launch(
        functools.partial(
            _rank_main,
            suite=suite,
            out=out,
            shard=shard,
            loaded_models=loaded_models,
            recompute=tuple(recompute),
        )
    )
    return fabric.global_rank == 0
