"""Attributions and metrics of an evaluation suite into a results folder.

Examples:
  bamkit evaluate evaluate/demo.yaml --data out/data.h5 --models out/models --out out/results
  bamkit evaluate evaluate/paper.yaml --method mypkg.maps:my_saliency     # score your own method too
  bamkit evaluate evaluate/paper.yaml --shard 3/8                          # one job of a job array
  bamkit evaluate evaluate/demo.yaml --set samples.n_boot=200 --set scenarios.mcs.max_images=50
"""

from __future__ import annotations

import argparse

from bamkit.cli_options import add_methods, add_recompute, add_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="evaluation suite YAML (evaluate/demo.yaml, paper.yaml, seeds.yaml)")
    p.add_argument("--data", help="dataset file (overrides the suite's 'data')")
    p.add_argument("--models", help="folder of <role>.ckpt checkpoints (overrides the suite's 'models')")
    p.add_argument("--out", help="results folder (default results/<suite name>)")
    p.add_argument(
        "--patch-data", help="a second dataset file with sets the first lacks (bamkit delta --out)"
    )
    p.add_argument("--verify", help="the bamkit verify JSON (RMCS accuracy drop, report)")
    p.add_argument(
        "--smoke", action="store_true", help="shrink the suite (few images and trials): wiring check"
    )
    add_methods(p, "to score")
    p.add_argument(
        "--shard", metavar="i/n", help="evaluate only shard i of n (0-based); merged when all are done"
    )
    add_set(p, "the suite", "samples.n_boot=200")
    p.add_argument(
        "--force", action="store_true", help="compute every map again instead of reusing the cache"
    )
    add_recompute(p)
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip the metrics whose models or sets are absent (default: an error naming what is missing)",
    )


def run(args: argparse.Namespace) -> int:
    from bamkit.evaluate import run_suite
    from bamkit.paths import shipped

    out = run_suite(
        shipped(args.suite),
        data=args.data,
        models=args.models,
        out=args.out,
        methods=tuple(args.method),
        shard=args.shard,
        patch_data=args.patch_data,
        verify=args.verify,
        smoke=True if args.smoke else None,
        allow_missing=True if args.allow_missing else None,
        overrides=tuple(args.overrides),
        force=args.force,
        recompute=tuple(args.recompute),
    )
    summary = out / "summary.csv"
    if summary.is_file():
        import pandas as pd

        from bamkit.evaluate.tables import nonfinite_warnings

        df = pd.read_csv(summary)
        cols = [c for c in ("metric", "method", "value", "trial_std", "ci_low", "ci_high", "rank") if c in df]
        shown = df[cols].copy()
        if "rank" in shown:  # ranks are whole numbers; "-" for references and unranked methods
            shown["rank"] = [str(int(r)) if r == r else "-" for r in shown["rank"]]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        for line in nonfinite_warnings(df):
            print(line)
        print(f"results: {out}")
    else:
        print(f"shard written to {out / 'shards'}; the tables are merged when every shard is done")
    return 0
