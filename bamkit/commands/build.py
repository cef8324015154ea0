"""Build every set a dataset recipe names into one HDF5 file (the layout of docs/design.md).

Examples:
  bamkit build data_recipes/demo.yaml --out demo.h5
  bamkit build data_recipes/bam.yaml --out bam.h5 --workers 16 \\
      --coco-annotations /data/coco/annotations/instances_train2017.json --coco-images /data/coco/train2017 \\
      --miniplaces /data/miniplaces

An interrupted build resumes when the same command is run again; the result does not depend on --workers.
"""

from __future__ import annotations

import argparse
import os

from bamkit.cli_options import add_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML (e.g. data_recipes/bam.yaml)")
    p.add_argument("--out", help="output .h5 (default: <recipe name>.h5)")
    p.add_argument("--sources-root", help="folder the recipe's relative source paths are taken from")
    p.add_argument("--coco-annotations", help="COCO instances JSON (instances_train2017.json)")
    p.add_argument("--coco-images", help="folder of the COCO images (train2017/)")
    p.add_argument("--miniplaces", help="MiniPlaces root (categories.txt, train.txt, images/)")
    p.add_argument("--images-per-pair", type=int, help="images per (object, scene) pair")
    p.add_argument("--size", type=int, help="output image side in pixels")
    p.add_argument("--seed", type=int, help="seed of every random draw")
    p.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="decode/compose processes (default: min(4, cores)); the bytes do not depend on it",
    )
    p.add_argument("--smoke", action="store_true", help="shrink to at most 8 images per pair")
    p.add_argument("--force", action="store_true", help="rebuild even when the output is up to date")
    add_set(p, "the recipe", "commonality_images_per_class=100")


def run(args: argparse.Namespace) -> int:
    from bamkit.data.build import build_dataset
    from bamkit.data.recipe import load_recipe

    recipe = load_recipe(
        args.recipe,
        args.overrides,
        root=args.sources_root,
        coco_annotations=args.coco_annotations,
        coco_images=args.coco_images,
        miniplaces=args.miniplaces,
        images_per_pair=args.images_per_pair,
        size=args.size,
        seed=args.seed,
        smoke=True if args.smoke else None,
    )
    out = build_dataset(recipe, out=args.out, workers=args.workers, force=args.force)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB); check it with 'bamkit inspect {out}'")
    return 0
