"""List the registered metrics: direction, scenario, the saliency mode that feeds them, their settings with the
defaults they run with, and the function that computes them.

Examples:
  bamkit metrics            # table
  bamkit metrics --json     # machine-readable
  bamkit metrics rcap       # one metric in detail

A metric's settings go in an evaluation suite's metrics list: {name: rcap, lower_bound: 60}.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one metric in detail")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _arrow(hib: bool | None) -> str:
    return {True: "higher", False: "lower", None: "-"}[hib]


def run(args: argparse.Namespace) -> int:
    from bamkit.metrics.registry import METRICS

    if args.name:
        d = METRICS.get(args.name).describe()
        print(
            json.dumps(d, indent=2, ensure_ascii=False, default=str)
            if args.json
            else "\n".join(f"{k:17s} {v}" for k, v in d.items())
        )
        return 0
    rows = [cls.describe() for _, cls in METRICS.items()]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return 0
    head = ("metric", "better", "scenario", "saliency", "settings (defaults)", "computed by")
    table = [head] + [
        (
            r["name"],
            _arrow(r["higher_is_better"]),
            r["scenario"],
            r["saliency"] or "-",
            ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-",
            r["function"].removeprefix("bamkit.metrics."),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
