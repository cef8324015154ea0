"""The shipped configs: where they are, and a copy to edit.

`bamkit configs copy DIR` writes DIR/data_recipes, DIR/train, DIR/evaluate and DIR/pipelines (the configs the
installed bamkit runs); edit them and run e.g. `bamkit run DIR/pipelines/demo.yaml`. `bamkit configs path`
prints the folder bamkit reads them from.
"""

from __future__ import annotations

import argparse

from bamkit.cli_options import verbosity


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser(
        "copy",
        help="copy data_recipes/, train/, evaluate/, pipelines/ into a folder to edit",
        parents=[verbosity()],
    )
    c.add_argument("dest", help="folder to copy into (created; existing files are never overwritten)")
    sub.add_parser("path", help="print the folder the shipped configs are read from", parents=[verbosity()])


def run(args: argparse.Namespace) -> int:
    from bamkit.paths import config_root, copy_configs

    if args.action == "path":
        print(config_root())
        return 0
    files = copy_configs(args.dest)
    print(f"copied {len(files)} config files from {config_root()} into {args.dest}")
    print(f"run one with e.g. 'bamkit run {args.dest}/pipelines/demo.yaml'")
    return 0
