"""Craft the IIR δ patches (BAM §4.4, App. A) into the bamboo_forest_patch set.

For every bamboo_forest image x, a dog-shaped δ (initialised so that x + δ₀ is the clean dog paste from the
obj_scene row of the same pair) is optimised so that the scene model's logits barely change:
minimise ‖f(x+δ) − f(x)‖₂ − η1‖δ‖₂ + η2·(pixel-range hinge), δ projected onto the dog mask after each step.
The stored uint8 images are verified (same class, ‖Δf‖₂ and its ratio to ‖f(x)‖₂, δ zero outside the mask);
images that fail are kept and flagged (passed = false), never dropped.

Without --out the set is added to the data file itself (written last-step-complete, so an interruption never
leaves a set that readers accept); with --out a new small dataset file holds bamboo_forest and the patches,
written under a temporary name and renamed. A killed run resumes from its finished batches
(<out>.delta-parts/) and gives the same patches.
"""

from __future__ import annotations

import argparse
import json

from bamkit.errors import CheckFailed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset file with the bamboo_forest and obj_scene sets")
    p.add_argument(
        "--model", required=True, help="scene model checkpoint (BAM: the scene-only model, f_empty)"
    )
    p.add_argument("--out", help="output file (default: add the set to --data in place)")
    p.add_argument("--steps", type=int, help="gradient steps per image (paper: 300)")
    p.add_argument(
        "--lr", type=float, help="step size in pixel units (default: 500 for sgd as in the paper, 2 for adam)"
    )
    p.add_argument(
        "--optimizer", choices=("sgd", "adam"), help="sgd (paper: plain gradient descent, default) or adam"
    )
    p.add_argument("--momentum", type=float, help="SGD momentum (paper: 0)")
    p.add_argument("--eta1", type=float, help="weight of −‖δ‖₂ (paper: 0.01)")
    p.add_argument("--eta2", type=float, help="weight of the [0, 255] range hinge")
    p.add_argument("--eta3", type=float, help="weight of Σ|δ| outside the mask (--projection penalty)")
    p.add_argument(
        "--projection",
        choices=("hard", "penalty"),
        help="hard: δ ← δ ⊙ mask each step (BAM code, default); penalty: the paper's η3 term",
    )
    p.add_argument("--tol", type=float, help="early stop once every image keeps its class and ratio < TOL")
    p.add_argument(
        "--threshold",
        type=float,
        help="ratio ‖Δf‖/‖f(x)‖ below which an image counts as functionally similar (default 0.1)",
    )
    p.add_argument(
        "--keep-best",
        action="store_true",
        default=None,
        help="keep each image's iterate with the smallest logit change, not the last (paper: last)",
    )
    p.add_argument("--init-noise", type=float, help="std (pixels) of seeded noise added to δ₀")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int, help="images optimised at once (bounds memory)")
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
    p.add_argument("--json", help="also write the summary to this JSON file")


def run(args: argparse.Namespace) -> int:
    import torch

    from bamkit import atomic
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
    # Only the flags given: DeltaOptions holds the defaults (one source of truth for CLI, YAML and Python).
    names = (
        "steps",
        "lr",
        "optimizer",
        "momentum",
        "eta1",
        "eta2",
        "eta3",
        "projection",
        "tol",
        "threshold",
        "keep_best",
        "init_noise",
        "seed",
        "batch_size",
    )
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    summary = craft_file(args.data, args.model, out=args.out, device=args.device, force=args.force, **options)
    print(format_summary(summary))
    if args.json:
        atomic.write_text(args.json, json.dumps(summary, indent=2, default=str))
    if args.strict and summary["n_failed"]:
        raise CheckFailed(
            f"{summary['n_failed']} of {summary['n_images']} patched images failed verification "
            f"(rows {summary['failed_rows'][:10]}); they are stored with passed=false"
        )
    return 0
