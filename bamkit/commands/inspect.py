"""Summarise a dataset file and check its invariants; exit 1 naming the failed check when one fails.

Checks: API.md datasets and dtypes, label ranges, non-empty masks for every object, boxes around masks, the
validation split rule, pixel-exact pairing of obj_scene / scene_only / obj_gray, and that the commonality,
dog_bedroom and bamboo_forest rows equal the rows they were made from.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="dataset .h5 written by 'bamkit build'")
    p.add_argument("--json", dest="json_out", help="also write the summary and failures as JSON here")


def run(args: argparse.Namespace) -> int:
    from bamkit.atomic import write_text
    from bamkit.data.inspect import inspect_file
    from bamkit.errors import CheckFailed

    report = inspect_file(args.file)
    print(report.table())
    if args.json_out:
        write_text(args.json_out, json.dumps(report.to_dict(), indent=2))
    if not report.passed:
        check, message = report.failures[0]
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise CheckFailed(f"check '{check}' failed: {message}{more}")
    return 0
