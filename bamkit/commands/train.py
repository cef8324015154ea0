"""Train one BAM model, or every model a sweep config names (train/all.yaml), into DIR/<name>.ckpt.

Every config key can be overridden with --set KEY=VALUE (dotted, value read as YAML), e.g.
--set trainer.max_epochs=3 --set trainer.devices=4 --set trainer.strategy=ddp. Models whose checkpoint is
current (same config and training data) are skipped (--force trains them again); an interrupted run resumes
from DIR/<name>/last.ckpt.
"""

from __future__ import annotations

import argparse

from bamkit.cli_options import add_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", help="training config or sweep YAML (train/f_o.yaml, train/all.yaml, train/demo.yaml)"
    )
    p.add_argument("--data", help="the HDF5 dataset (overrides data.path)")
    p.add_argument("--out", help="models folder (overrides out; default 'models')")
    p.add_argument("--smoke", action="store_true", help="a few batches per model, to check the wiring")
    p.add_argument(
        "--force", action="store_true", help="train every model again, even those that are current"
    )
    add_set(p, "the training config (of every model of a sweep)", "trainer.max_epochs=3")


def run(args: argparse.Namespace) -> int:
    from bamkit.paths import shipped
    from bamkit.train.runner import train_config

    paths = train_config(
        shipped(args.config),
        data=args.data,
        out=args.out,
        smoke=args.smoke,
        overrides=tuple(args.overrides),
        force=args.force,
    )
    for p in paths:
        print(p)
    return 0
