"""List registered attribution methods."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit methods' is not built yet")
