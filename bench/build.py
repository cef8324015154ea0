"""Benchmark: bamkit's dataset builder against BAM's original algorithm on the same sources.

Measures, in one run on synthetic sources (``bamkit sources synth --scale demo``: 200 objects and 200 scenes
per class):

* wall time and composites per second per core of the original algorithm (``bench/bam_original.py``: PIL,
  one image at a time, JPEG files per image) and of bamkit (workers 1 and 2) building the sets BAM's script
  builds (obj_scene, scene_only, dog_bedroom, bamboo_forest), then bamkit building every set;
* peak resident memory of each run (the process and its workers) and bytes on disk per image;
* memory flatness: bamkit's peak RSS at ``--n`` and at ``2 * --n`` images per pair;
* the paper-scale projection (all sets, 128 px: 3 x 100k + 10 x 10k + 200 rows) for 2 and 16 cores.

Each measured build runs in its own subprocess so peak memory is clean. The build is CPU-only; ``--device``
is accepted for uniformity with the other benchmarks and ignored.

    .venv/bin/python bench/build.py --n 32 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAM_SETS = ["obj_scene", "scene_only", "dog_bedroom", "bamboo_forest"]
PAPER_ROWS = 3 * 100_000 + 10 * 10_000 + 2 * 100
PAPER_COMPOSITES = 100_000


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the workers): robust on a shared machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _dir_bytes(path: Path) -> tuple[int, int]:
    total, files = 0, 0
    for p in path.rglob("*.jpg"):
        total += p.stat().st_size
        files += 1
    return total, files


def _stop_forkserver() -> None:
    """Stop and reap this process's fork server, so its CPU time and its workers' count in RUSAGE_CHILDREN."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


def child_bamkit(args: argparse.Namespace) -> dict:
    from bamkit.data.build import build_dataset
    from bamkit.data.recipe import load_recipe

    sets = BAM_SETS if args.sets == "bam" else None
    over = {"sets": sets} if sets else {}
    recipe = load_recipe(
        ROOT / "data_recipes" / "demo.yaml",
        root=args.sources,
        images_per_pair=args.n,
        size=args.size,
        val_fraction=0.25,
        **over,
    )
    t = time.perf_counter()
    out = build_dataset(recipe, Path(args.out), workers=args.workers, force=True)
    wall = time.perf_counter() - t
    from bamkit.data.h5 import BamFile

    with BamFile(out) as bf:
        rows = sum(len(bf[s]) for s in bf.sets())
    _stop_forkserver()
    return {
        "wall_s": wall,
        "cpu_s": _cpu_s(),
        "rows": rows,
        "bytes": out.stat().st_size,
        "peak_mb": _peak_mb(),
    }


def child_original(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from bam_original import run_original

    from bamkit.classes import BAM_OBJECTS, BAM_SCENES

    src = Path(args.sources)
    out = Path(args.out)
    t = time.perf_counter()
    steps = run_original(
        src / "coco/annotations/instances_train2017.json",
        src / "coco/train2017",
        src / "miniplaces",
        list(BAM_OBJECTS),
        list(BAM_SCENES),
        args.n,
        out,
    )
    wall = time.perf_counter() - t
    total, files = _dir_bytes(out)
    return {
        "wall_s": wall,
        "cpu_s": _cpu_s(),
        "steps": steps,
        "rows": files,
        "bytes": total,
        "peak_mb": _peak_mb(),
    }


def _run_child(kind: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", kind]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = {**os.environ, "BAMKIT_PROGRESS": "0"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=32, help="images per (object, scene) pair (demo sources have 80)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="the larger worker count to measure")
    p.add_argument("--device", default="cpu", help="ignored: the build runs on CPU")
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    p.add_argument("--skip-original", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--sources", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--sets", default="all", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fn = child_bamkit if args.child == "bamkit" else child_original
        print(json.dumps(fn(args)))
        return

    from bamkit.sources.synth import write_sources

    work = Path(args.work or tempfile.mkdtemp(prefix="bamkit-bench-"))
    src = work / "sources"
    if not (src / "synth.json").exists():
        write_sources(src, scale="demo", seed=0)
    n, S = args.n, args.size
    composites = 100 * n
    results: list[tuple[str, dict, int]] = []
    if not args.skip_original:
        shutil.rmtree(work / "orig", ignore_errors=True)  # the original refuses to write into old output
        results.append(
            ("BAM original (1 proc)", _run_child("original", sources=src, out=work / "orig", n=n), 1)
        )
    for w in sorted({1, args.workers}):
        r = _run_child("bamkit", sources=src, out=work / f"bk_w{w}.h5", n=n, size=S, workers=w, sets="bam")
        results.append((f"bamkit BAM sets w={w}", r, w))
    r_all = _run_child("bamkit", sources=src, out=work / "bk_all.h5", n=n, size=S, workers=args.workers)
    results.append((f"bamkit all sets w={args.workers}", r_all, args.workers))
    r_2n = _run_child("bamkit", sources=src, out=work / "bk_all_2n.h5", n=2 * n, size=S, workers=args.workers)
    results.append((f"bamkit all sets 2n w={args.workers}", r_2n, args.workers))

    print(
        f"\nBAM dataset build, {n} images per pair ({composites} composites), {S} px, sources: synthetic demo"
    )
    print(
        "comp/s/core = composites / CPU seconds of the process and its workers (wall time is inflated when the"
    )
    print("machine is shared; CPU time includes interpreter start-up and the source decoding)")
    print(f"{'run':<28}{'wall s':>8}{'CPU s':>8}{'comp/s/core':>13}{'rows':>8}{'B/image':>9}{'peak MB':>9}")
    for name, r, _cores in results:
        comp = composites * (2 if "2n" in name else 1)
        print(
            f"{name:<28}{r['wall_s']:>8.1f}{r['cpu_s']:>8.1f}{comp / r['cpu_s']:>13.1f}{r['rows']:>8}"
            f"{r['bytes'] / max(r['rows'], 1):>9.0f}{r['peak_mb']:>9.0f}"
        )
    if not args.skip_original:
        orig = results[0][1]
        print("original steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in orig["steps"].items()))
        for w in sorted({1, args.workers}):
            rw = next(r for name, r, _ in results if name == f"bamkit BAM sets w={w}")
            print(
                f"speed-up on BAM's sets, {w} worker(s): CPU time {orig['cpu_s'] / rw['cpu_s']:.1f}x, "
                f"wall {orig['wall_s'] / rw['wall_s']:.1f}x"
            )
    print(
        f"peak memory at n={n}: {r_all['peak_mb']:.0f} MB, at n={2 * n}: {r_2n['peak_mb']:.0f} MB "
        f"(ratio {r_2n['peak_mb'] / r_all['peak_mb']:.2f}; flat = about 1)"
    )
    # Projection: rows per CPU second of the all-sets build, scaled linearly in cores (composing is
    # embarrassingly parallel; the parent's assembly is a byte copy).
    per_core = r_all["rows"] / r_all["cpu_s"]
    print(
        f"\npaper-scale projection (all sets at 128 px = {PAPER_ROWS} rows, {PAPER_COMPOSITES} composites; "
        f"COCO json parse and real 640x480 JPEG decode of 10k objects not included):"
    )
    for cores in (2, 16):
        print(f"  bamkit {cores:>2} cores: {PAPER_ROWS / per_core / cores / 60:.1f} min")
    if not args.skip_original:
        orig_rate = composites / orig["cpu_s"]
        print(f"  BAM original (1 process, its sets only): {PAPER_COMPOSITES / orig_rate / 60:.1f} min")


if __name__ == "__main__":
    main()
