"""Build every set a recipe names into one HDF5 file."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe")
    p.add_argument("--out")
    p.add_argument("--coco-annotations")
    p.add_argument("--coco-images")
    p.add_argument("--miniplaces")
    p.add_argument("--images-per-pair", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit build' is not built yet")
