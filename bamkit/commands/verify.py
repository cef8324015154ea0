"""Relative feature importance checks (BAM Figure 2) on the models in --models.

Writes JSON, a table (.txt) and, with k-models, a plot (_k.png); prints the table; exits 1 when a premise fails
its margin: f_o accurate without the scene and near chance without the object, f_s the other way round and
more confident without the object, the bamboo-forest accuracy drop large at small k, gone at k = 1 and falling
with k. The margins are the paper's; --set overrides one, e.g. --set min_conf_rise=0.5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bamkit.cli_options import add_set, schema_from_set
from bamkit.verify.checks import Thresholds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the HDF5 dataset")
    p.add_argument("--models", required=True, help="folder of <name>.ckpt files")
    p.add_argument("--out", help="JSON output (default: MODELS/verify.json)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    p.add_argument(
        "--device", default="cpu", help="torch device for the forward passes (cpu, cuda, cuda:1 …)"
    )
    p.add_argument(
        "--max-pairs",
        type=int,
        default=None,
        help="measure Figure 2 (top) on a seeded sample of N validation pairs (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --max-pairs sample (default: 0)")
    add_set(p, "the premises' margins", "min_conf_rise=0.5", Thresholds)


def run(args: argparse.Namespace) -> int:
    from bamkit.errors import CheckFailed
    from bamkit.verify import verify_models

    th = schema_from_set(Thresholds, args.overrides)
    out = Path(args.out) if args.out else Path(args.models) / "verify.json"
    res = verify_models(
        args.data,
        args.models,
        batch_size=args.batch_size,
        out=out,
        thresholds=th,
        device=args.device,
        max_pairs=args.max_pairs,
        seed=args.seed,
    )
    print(res.table())
    print(f"wrote {out}")
    if not res.passed:
        raise CheckFailed(f"{len(res.failures)} premise(s) failed: {'; '.join(map(str, res.failures))}")
    return 0
