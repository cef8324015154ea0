"""The main job: every stage in order — sources, build, train, verify, δ, evaluate, report.

Each stage is skipped when its outputs are current (a key over its config and its inputs' keys); an
interrupted run continues where it stopped. With no CONFIG, runs the embedded demo (pipelines/demo.yaml) on
synthetic sources; the report lands in OUT/report/index.html.
"""

from __future__ import annotations

import argparse
import time

from bamkit.cli_options import add_methods, add_set
from bamkit.pipeline.config import with_overrides
from bamkit.pipeline.run import STAGES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", nargs="?", help="run config YAML (default: the embedded demo, pipelines/demo.yaml)"
    )
    p.add_argument("--out", default="bamkit_run", help="run folder (default: ./bamkit_run)")
    p.add_argument("--workers", type=int, help="worker processes for the dataset build")
    p.add_argument(
        "--seed",
        type=int,
        help="the run's seed: replaces the seeds of the sources, recipe, training, δ and suite (a whole "
        "independent repetition; default: the config's, 0 for the demo)",
    )
    p.add_argument(
        "--force", action="store_true", help="run every stage again, even those whose outputs are current"
    )
    add_set(p, "the run config", "delta.steps=100")
    add_methods(p, "the evaluate stage scores")
    p.add_argument(
        "--only",
        action="append",
        choices=STAGES,
        default=[],
        help="run only this stage (repeatable); the others must be current",
    )


def run(args: argparse.Namespace) -> int:
    from bamkit.pipeline import load_run_config, run_pipeline

    rc, config_file = load_run_config(args.config, args.overrides)
    rc = with_overrides(rc, workers=args.workers, seed=args.seed)
    t0 = time.perf_counter()
    res = run_pipeline(
        rc, config_file, args.out, only=tuple(args.only), force=args.force, methods=tuple(args.method)
    )
    print()
    print(res.table())
    print(f"wall time {time.perf_counter() - t0:.1f} s; report: {res.report}")
    return 0
