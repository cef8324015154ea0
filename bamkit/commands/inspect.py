"""Summarise a dataset file and check its invariants."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit inspect' is not built yet")
