"""Write a contact sheet (PNG) of a set's images with their mask outlines and labels."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="dataset .h5")
    p.add_argument("--set", required=True, help="set name, e.g. obj_scene or commonality/k0.5")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--n", type=int, default=32, help="number of images (spread evenly over the set)")


def run(args: argparse.Namespace) -> int:
    from bamkit.data.preview import write_preview

    out = write_preview(args.file, args.set, args.out, n=args.n)
    print(f"wrote {out}")
    return 0
