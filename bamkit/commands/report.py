"""HTML + Markdown + CSV report of a results folder."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results")
    p.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit report' is not built yet")
