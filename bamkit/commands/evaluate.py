"""Attributions and metrics into a results folder."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite")
    p.add_argument("--data")
    p.add_argument("--models")
    p.add_argument("--out")
    p.add_argument("--method", action="append", default=[])
    p.add_argument("--shard")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit evaluate' is not built yet")
