"""Write synthetic source data in the real COCO instances / MiniPlaces formats.

`bamkit sources synth --out DIR` writes DIR/coco/annotations/instances_train2017.json, DIR/coco/train2017/*.jpg
and DIR/miniplaces/ (categories.txt, train.txt, val.txt, images/train/<letter>/<scene>/*.jpg, images/val/*.jpg),
the inputs `bamkit build` reads. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import os
import time

from bamkit.cli_options import verbosity


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("synth", help="synthetic COCO + MiniPlaces sources", parents=[verbosity()])
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--scale",
        choices=["tiny", "demo"],
        default="demo",
        help="tiny: ~12 images per class (tests); demo: 200 objects, 200 scenes per class (default)",
    )
    s.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    s.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes drawing the images (default: min(4, cores)); the bytes do not depend on it",
    )
    s.add_argument(
        "--corrupt",
        type=int,
        default=0,
        metavar="N",
        help="add N bad files of each kind (missing, truncated, not an image) to both sources",
    )


def run(args: argparse.Namespace) -> int:
    from bamkit.sources.synth import write_sources

    t0 = time.perf_counter()
    s = write_sources(args.out, scale=args.scale, seed=args.seed, corrupt=args.corrupt, workers=args.workers)
    coco, mp = s["coco"], s["miniplaces"]
    print(
        f"COCO       {coco['n_images']} images, {coco['n_annotations']} annotations "
        f"({coco['objects_per_class']} per BAM object)"
    )
    print(f"           {coco['annotations']}")
    print(
        f"MiniPlaces {mp['n_train']} train + {mp['n_val']} val images "
        f"({mp['train_per_scene']} + {mp['val_per_scene']} per BAM scene)"
    )
    print(f"           {mp['root']}")
    if args.corrupt:
        n = sum(len(v) for v in coco["corrupt"].values()) + sum(len(v) for v in mp["corrupt"].values())
        print(f"corrupt    {n} bad files injected (missing, truncated, not an image)")
    print(
        f"wrote synthetic sources (scale {s['scale']}, seed {s['seed']}) in {time.perf_counter() - t0:.1f} s"
    )
    return 0
