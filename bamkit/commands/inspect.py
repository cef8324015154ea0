"""Summarise a dataset file and check its invariants; exit 1 naming the failed check when one fails.

Checks: every dataset of the layout (docs/design.md) and its dtype, label ranges, non-empty masks for every object, boxes around masks, the
validation split rule, pixel-exact pairing of obj_scene / scene_only / obj_gray, and that the commonality,
dog_bedroom and bamboo_forest rows equal the rows they were made from.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="dataset .h5 written by 'bamkit build'")
    p.add_argument(
        "--json", action="store_true", help="print the summary and failures as JSON instead of the table"
    )


def run(args: argparse.Namespace) -> int:
    from bamkit.data.inspect import inspect_file
    from bamkit.errors import CheckFailed

    report = inspect_file(args.file)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    if not report.passed:
        check, message = report.failures[0]
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise CheckFailed(f"check '{check}' failed: {message}{more}")
    return 0
