"""Relative feature importance checks (BAM Figure 2)."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit verify' is not built yet")
