"""The main job: every stage in order."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?")
    p.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit run' is not built yet")
