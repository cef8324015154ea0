"""Craft the IIR delta patches."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit delta' is not built yet")
