"""BatchNorm folding (``execution.fold_bn``): a suite's attribution passes on a trained BAM model, folded against
unfolded, alternately in one process, with the maps' fidelity.

    .venv/bin/python bench/fold_bn.py --models demo_out/models --data demo_out/data/dataset.h5
    .venv/bin/python bench/fold_bn.py --models demo_out/models --data demo_out/data/dataset.h5 --device cuda

Prints one Markdown table per run: the seconds of each round (unfolded and folded, alternated so that a drift of
the machine's speed hits both alike), the median ratio, and per method the Spearman rank correlation of the folded
maps with the unfolded ones (BAM's 2-D maps, mean and minimum over the images) and the largest logit difference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bamkit.allocator import tune_allocator
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.engine import run_methods, spearman
from bamkit.attribution.fold import conv_bn_pairs, folded
from bamkit.attribution.postprocess import to_saliency
from bamkit.evaluate import methods as methods_mod
from bamkit.evaluate.datasets import DataSets
from bamkit.evaluate.validate import load_suite
from bamkit.models import load_classifier

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, help="folder of <name>.ckpt (a demo run's models/)")
    ap.add_argument("--model", default="f_s", help="which checkpoint (default f_s)")
    ap.add_argument("--data", required=True, help="the run's dataset.h5")
    ap.add_argument("--set", default="obj_scene")
    ap.add_argument("--suite", default=str(ROOT / "evaluate" / "demo.yaml"), help="whose map methods run")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    tune_allocator()  # as the CLI does: without it every pass's large blocks are mapped and zero-filled anew

    dev = torch.device(args.device)
    model, meta = load_classifier(Path(args.models) / f"{args.model}.ckpt")
    model = model.to(dev).eval()
    suite = load_suite(args.suite)
    methods = {m.label: methods_mod.build(m) for m in suite.map_methods()}
    with DataSets(args.data) as bam:
        view = bam[args.set]
        rows = np.arange(args.images)
        x = meta.preprocess(torch.from_numpy(view.read("images", rows)).to(dev))
    with torch.no_grad():
        target = model(x).argmax(1)
    seeds = torch.arange(args.images)
    plain = ExecOptions(batch_size=suite.execution.sample_batch_size)
    fold = ExecOptions(batch_size=suite.execution.sample_batch_size, fold_bn=True)

    def timed(opts: ExecOptions) -> tuple[float, dict[str, torch.Tensor]]:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = run_methods(model, x, target, methods, seeds=seeds, opts=opts)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    timed(fold)  # the folded copy is built (and checked) once per model, outside the timed rounds
    times: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        a, ref = timed(plain)
        b, got = timed(fold)
        times.append((a, b))
    with torch.no_grad():
        dlogit = float((model(x) - folded(model, x[:2])(x)).abs().max())

    print(f"\n{args.model} ({meta.arch}, {meta.preprocess.input_size} px), {args.images} images of {args.set}, "
          f"{len(conv_bn_pairs(model, x[:2]))} BatchNorms folded, device {dev}, "
          f"{torch.get_num_threads()} threads\n")  # fmt: skip
    print("| round | unfolded s | folded s | ratio |\n|---|---|---|---|")
    for i, (a, b) in enumerate(times, 1):
        print(f"| {i} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    med = statistics.median(a / b for a, b in times)
    print(f"| median | | | **{med:.2f}** |\n")
    print(f"largest logit difference {dlogit:.2e}\n")
    print("| method | Spearman mean | Spearman min |\n|---|---|---|")
    for k in methods:
        rho = spearman(to_saliency(ref[k], "bam"), to_saliency(got[k], "bam"))
        print(f"| {k} | {float(rho.mean()):.5f} | {float(rho.min()):.5f} |")


if __name__ == "__main__":
    main()
