"""Time the evaluate stage: a suite on real data/models, or on planted data and models of a given size.

Prints one row per scenario leg (model on a set): images, seconds, images per second — attribution of every
method, the cache round trip and the per-image scores included — then the totals.

Usage:
    python bench/evaluate.py --suite evaluate/demo.yaml --data out/data/dataset.h5 --models out/models \
        --patch-data out/data/delta.h5 --device cuda
    python bench/evaluate.py --planted --size 64 --pairs 200 --device cpu     # no trained models needed
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import bamkit.attribution  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="evaluate/demo.yaml")
    ap.add_argument("--data")
    ap.add_argument("--models")
    ap.add_argument("--patch-data")
    ap.add_argument("--device", default="cpu", help="where the models run (cpu, cuda, cuda:1)")
    ap.add_argument("--planted", action="store_true", help="planted linear models on a synthetic file")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--out", help="results folder (default: a temporary one, deleted after)")
    args = ap.parse_args(argv)

    from bamkit.evaluate import evaluate, load_suite
    from bamkit.paths import shipped

    tmp = Path(tempfile.mkdtemp(prefix="bamkit-bench-"))
    out = Path(args.out) if args.out else tmp / "results"
    loaded = None
    if args.planted:
        from bamkit.testing.evaluate import planted_models, write_planted_file

        data = write_planted_file(tmp / "planted.h5", n_pairs=args.pairs, size=args.size)
        suite = load_suite(shipped(args.suite), data=data, models=tmp)
        loaded = planted_models(args.size, roles=("f_o", "f_s", "f_empty", "f_k0.1", "f_k1.0"))
        sc = suite.scenarios
        suite = replace(
            suite,
            metrics=tuple(m for m in suite.metrics if m not in ("iauc", "dauc")),
            methods=tuple(m for m in suite.methods if m.name not in ("gradcam", "guided_gradcam")),
            scenarios=replace(sc, rmcs=replace(sc.rmcs, models=("f_k0.1",))),
        )
    else:
        suite = load_suite(
            shipped(args.suite), data=args.data, models=args.models, patch_data=args.patch_data
        )
    suite = replace(suite, execution=replace(suite.execution, device=args.device))
    t0 = time.perf_counter()
    evaluate(suite, out, loaded_models=loaded)
    total = time.perf_counter() - t0
    s = json.loads((out / "summary.json").read_text())
    print(f"device {args.device}; suite {suite.name}; {len(suite.methods)} methods")
    print(f"{'scenario':<13} {'model':<8} {'set':<22} {'images':>7} {'seconds':>9} {'img/s':>8}")
    for t in s["timings"]:
        print(
            f"{t['scenario']:<13} {t['model']:<8} {t['set']:<22} {t['images']:>7} {t['seconds']:>9.2f} "
            f"{t['images'] / max(t['seconds'], 1e-9):>8.1f}"
        )
    legs = sum(t["seconds"] for t in s["timings"])
    print(f"{'legs total':<45} {sum(t['images'] for t in s['timings']):>7} {legs:>9.2f}")
    print(f"{'evaluate() total (incl. merge, statistics, provenance)':<55} {total:>9.2f}")
    if not args.out:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
