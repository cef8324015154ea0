"""HTML + Markdown + CSV report of a results folder (plots, saliency grids, verification, provenance).

Example:
  bamkit report out/results --out out/report      # then open out/report/index.html
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", help="a results folder written by 'bamkit evaluate'")
    p.add_argument("--out", help="report folder (default RESULTS/report)")


def run(args: argparse.Namespace) -> int:
    from bamkit.report import write_report

    page = write_report(args.results, out=args.out)
    print(f"report: {page}")
    return 0
