"""Benchmark the batched δ optimiser against a one-image-at-a-time loop in the same run (BAM App. A, docs/dataset.md#the-delta-patch).

Examples:
    .venv/bin/python bench/delta.py --device cuda --arch resnet50 --size 128 --input-size 224 --n 100 --steps 300
    .venv/bin/python bench/delta.py --preset cpu          # small CPU table (small CNN 64 px, ResNet-18/50 128 px)
    .venv/bin/python bench/delta.py --preset gpu --device cuda

The one-by-one loop can be timed on the first ``--single-n`` images only (its cost per image is constant); the
speed-up compares time per image. ``same`` reports whether the images the two loops share came out identical
(max |Δ| of the stored uint8 values). Models are randomly initialised (no downloads): the cost of a step does
not depend on the weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from bamkit.delta.optimize import optimize_batch
from bamkit.delta.options import DeltaOptions
from bamkit.models import build_network
from bamkit.preprocess import Preprocess


@dataclass
class Case:
    arch: str
    size: int
    input_size: int
    n: int
    steps: int
    single_n: int
    batch_size: int


PRESETS = {
    "cpu": [
        Case("small_cnn", 64, 64, 32, 30, 8, 32),
        Case("resnet18", 128, 128, 8, 5, 4, 8),
        Case("resnet50", 128, 128, 4, 3, 2, 4),
    ],
    "gpu": [
        Case("small_cnn", 64, 64, 100, 300, 100, 100),
        Case("resnet18", 128, 224, 100, 300, 20, 100),
        Case("resnet50", 128, 224, 100, 300, 10, 100),
    ],
}


def synthetic(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scenes (n,size,size,3) uint8, the same with an elliptic 'dog' pasted in, and its bool masks (n,size,size)."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
        masks[i] = ((yy - cy) / (size / 4)) ** 2 + ((xx - cx) / (size / 5)) ** 2 <= 1
    dog = scene.copy()
    dog[masks] = rng.integers(60, 200, (int(masks.sum()), 3), dtype=np.uint8)
    return torch.from_numpy(scene), torch.from_numpy(dog), torch.from_numpy(masks)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(case: Case, device: torch.device, optimizer: str, dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    model = build_network(case.arch, 10, weights=None).to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pp = Preprocess(case.input_size)
    scene, dog, masks = (t.to(device) for t in synthetic(case.n, case.size))
    opts = DeltaOptions(steps=case.steps, optimizer=optimizer, batch_size=case.batch_size)
    warm = DeltaOptions(steps=2, optimizer=optimizer)
    optimize_batch(
        model,
        pp,
        scene[: min(case.batch_size, case.n)],
        dog[: min(case.batch_size, case.n)],
        masks[: min(case.batch_size, case.n)],
        warm,
    )
    optimize_batch(model, pp, scene[:1], dog[:1], masks[:1], warm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    _sync(device)
    t0 = time.perf_counter()
    batched = []
    for lo in range(0, case.n, case.batch_size):
        hi = min(lo + case.batch_size, case.n)
        batched.append(
            optimize_batch(
                model, pp, scene[lo:hi], dog[lo:hi], masks[lo:hi], opts, indices=np.arange(lo, hi)
            ).patched
        )
    _sync(device)
    t_batched = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    patched = torch.cat(batched)

    t0 = time.perf_counter()
    single = []
    for i in range(case.single_n):
        single.append(
            optimize_batch(
                model, pp, scene[i : i + 1], dog[i : i + 1], masks[i : i + 1], opts, indices=[i]
            ).patched
        )
    _sync(device)
    t_single = time.perf_counter() - t0
    diff = (torch.cat(single).int() - patched[: case.single_n].int()).abs().max().item()
    per_b = t_batched / case.n
    per_s = t_single / case.single_n
    return {
        "arch": case.arch,
        "px": f"{case.size}->{case.input_size}",
        "n": case.n,
        "steps": case.steps,
        "batch": case.batch_size,
        "batched_s": t_batched,
        "ms/img/step": 1e3 * per_b / max(case.steps, 1),
        "single_n": case.single_n,
        "single_s": t_single,
        "single_s/img": per_s,
        "speedup": per_s / per_b,
        "max|Δ|": diff,
        "peak_GiB": peak,
    }


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    fmt = {
        "batched_s": "{:.2f}",
        "ms/img/step": "{:.3f}",
        "single_s": "{:.2f}",
        "single_s/img": "{:.3f}",
        "speedup": "{:.1f}x",
        "peak_GiB": "{:.2f}",
    }
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths)), "-|-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", choices=sorted(PRESETS), help="run a table of cases instead of one")
    p.add_argument("--arch", default="small_cnn", choices=("small_cnn", "resnet18", "resnet50"))
    p.add_argument("--size", type=int, default=64, help="stored image side (δ is optimised at this side)")
    p.add_argument("--input-size", type=int, help="model input side (default: --size)")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, help="default: --n (all images at once)")
    p.add_argument("--single-n", type=int, help="images timed one by one (default: --n)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=int, help="torch intra-op threads on the CPU")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/delta.py: CUDA is not available; pass --device cpu", file=sys.stderr)
        return 2
    cases = (
        PRESETS[args.preset]
        if args.preset
        else [
            Case(
                args.arch,
                args.size,
                args.input_size or args.size,
                args.n,
                args.steps,
                min(args.single_n or args.n, args.n),
                args.batch_size or args.n,
            )
        ]
    )
    dtype = getattr(torch, args.dtype)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"δ optimiser, batched vs one image at a time — {name}, torch {torch.__version__}, {args.optimizer}, {args.dtype}"
    )
    rows = []
    for case in cases:
        rows.append(run_case(case, device, args.optimizer, dtype))
        r = rows[-1]
        print(
            f"  {r['arch']} {r['px']}: batched {r['batched_s']:.2f} s, speed-up {r['speedup']:.1f}x",
            flush=True,
        )
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
