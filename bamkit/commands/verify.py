"""Relative feature importance checks (BAM Figure 2) on the models in ``--models``.

Writes JSON, a table (``.txt``) and, with k-models, a plot (``_k.png``); prints the table; exits 1 when an
expected ordering fails (f_o near chance on scene_only, f_s near chance on obj_gray, both accurate on
obj_scene, the bamboo-forest accuracy drop shrinking with k).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the HDF5 dataset")
    p.add_argument("--models", required=True, help="folder of <name>.ckpt files")
    p.add_argument("--out", help="JSON output (default: MODELS/verify.json)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--device", default="cpu", help="torch device for the forward passes (cpu, cuda, cuda:1 …)"
    )
    p.add_argument(
        "--min-full-acc", type=float, default=0.5, help="required accuracy of f_o/f_s on obj_scene"
    )
    p.add_argument(
        "--max-chance-ratio",
        type=float,
        default=2.0,
        help="accuracy with only the common feature kept must be below this multiple of chance",
    )
    p.add_argument("--max-k-rho", type=float, default=0.0, help="Spearman rho(k, drop) must be below this")


def run(args: argparse.Namespace) -> int:
    from bamkit.errors import CheckFailed
    from bamkit.verify import Thresholds, verify_models

    th = Thresholds(
        min_full_acc=args.min_full_acc, max_chance_ratio=args.max_chance_ratio, max_k_rho=args.max_k_rho
    )
    out = Path(args.out) if args.out else Path(args.models) / "verify.json"
    res = verify_models(
        args.data, args.models, batch_size=args.batch_size, out=out, thresholds=th, device=args.device
    )
    print(res.table())
    print(f"wrote {out}")
    if not res.passed:
        raise CheckFailed(
            f"{len(res.failures)} expected ordering(s) failed: {'; '.join(map(str, res.failures))}"
        )
    return 0
