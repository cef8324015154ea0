"""Write a contact sheet of a set."""

from __future__ import annotations

import argparse

from bamkit.errors import NotBuiltError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")
    p.add_argument("--set", required=True)
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    raise NotBuiltError("'bamkit preview' is not built yet")
