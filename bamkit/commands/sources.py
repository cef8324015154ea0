"""Write synthetic source data in the real COCO instances / MiniPlaces formats."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("synth", help="synthetic COCO + MiniPlaces sources")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--scale", choices=["tiny", "demo"], default="demo")
    s.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit sources' is not built yet")
