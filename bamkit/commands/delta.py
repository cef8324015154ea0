"""Craft the IIR δ patches (BAM §4.4, App. A) into the bamboo_forest_patch set.

For every bamboo_forest image x, a dog-shaped δ (initialised so that x + δ₀ is the clean dog paste from the
obj_scene row of the same pair) is optimised so that the scene model's logits barely change:
minimise ‖f(x+δ) − f(x)‖₂ − η1‖δ‖₂ + η2·(pixel-range hinge), δ projected onto the dog mask after each step.
The stored uint8 images are verified (same class, ‖Δf‖₂ and its ratio to ‖f(x)‖₂, δ zero outside the mask);
images that fail are kept and flagged (passed = false), never dropped. The optimisation's options (the paper's
by default) are set with --set, e.g. --set steps=100 --set eta1=0.

Without --out the set is added to the data file itself (written last-step-complete, so an interruption never
leaves a set that readers accept); with --out a new small dataset file holds bamboo_forest and the patches,
written under a temporary name and renamed. A killed run resumes from its finished batches
(<out>.delta-parts/) and gives the same patches.
"""

from __future__ import annotations

import argparse
import json

from bamkit.cli_options import add_set, schema_from_set
from bamkit.config import apply_overrides
from bamkit.delta.options import DeltaOptions
from bamkit.errors import CheckFailed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset file with the bamboo_forest and obj_scene sets")
    p.add_argument(
        "--model", required=True, help="scene model checkpoint (BAM: the scene-only model, f_empty)"
    )
    p.add_argument("--out", help="output file (default: add the set to --data in place)")
    add_set(p, "the δ optimisation's options", "steps=100", DeltaOptions)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (never chosen automatically)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (tiny models on a busy machine run several times faster with 1)",
    )
    p.add_argument("--force", action="store_true", help="recompute even if the output holds a current set")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any image fails verification")
    p.add_argument(
        "--verify-only",
        action="store_true",
        help="recompute the figures of an existing set from its stored images and compare",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    import torch

    from bamkit.delta.craft import craft_file, format_summary, verify_file

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.verify_only:
        res = verify_file(args.out or args.data, args.model, device=args.device)
        print(format_summary({**res["summary"], "out": args.out or args.data}))
        if not res["ok"]:
            raise CheckFailed(
                f"stored δ figures differ from recomputed ones: {', '.join(res['mismatches'])}; "
                "re-run 'bamkit delta --force'"
            )
        print("  stored figures match the recomputed ones")
        return 0
    schema_from_set(DeltaOptions, args.overrides)  # a bad value fails here, naming the flag
    options = apply_overrides({}, args.overrides)  # only what was given: DeltaOptions holds the defaults
    summary = craft_file(args.data, args.model, out=args.out, device=args.device, force=args.force, **options)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    if args.strict and summary["n_failed"]:
        raise CheckFailed(
            f"{summary['n_failed']} of {summary['n_images']} patched images failed verification "
            f"(rows {summary['failed_rows'][:10]}); they are stored with passed=false"
        )
    return 0
