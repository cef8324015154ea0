"""Train one BAM model, or every model a sweep config names."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config")
    p.add_argument("--data")
    p.add_argument("--out")
    p.add_argument("--smoke", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit train' is not built yet")
