"""Throughput and bf16 fidelity of the structural attribution methods and TCAV.

Random-initialised torchvision ResNet-50 (no weights are downloaded; throughput does not depend on them) at the
paper's 224 px with random images. Prints a Markdown table: images per second and milliseconds per image for
each method, and (``--fidelity``) the mean Spearman correlation of the bf16 maps with the fp32 maps.

    .venv/bin/python bench/bench_structural.py --device cuda --n 32 --batch-size 64 --fidelity
    .venv/bin/python bench/bench_structural.py --device cpu --n 2 --size 64 --arch resnet18 --quick
"""

from __future__ import annotations

import argparse
import time

import torch

import bamkit.attribution as A
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.tcav import tcav

# Paper-scale settings (docs/methods.md); --quick shrinks the step counts for a CPU smoke run.
METHODS = {
    "guided_backprop": {},
    "guided_backprop_smoothgrad": {"n_samples": 25},
    "gradcam": {},
    "gradcam_smoothgrad": {"n_samples": 25},
    "guided_gradcam": {},
    "guided_gradcam_smoothgrad": {"n_samples": 25},
    "lrp": {},
    "lrp_gamma_box": {"composite": "epsilon_gamma_box"},
    "blur_ig": {"n_steps": 100},
    "guided_ig": {"n_steps": 200},
}
QUICK = {"n_samples": 3, "n_steps": 5}


def _model(arch: str) -> torch.nn.Module:
    import torchvision.models as tvm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return getattr(tvm, arch)(num_classes=10).eval()


def _method(name: str, params: dict, quick: bool):
    params = {k: (QUICK[k] if quick and k in QUICK else v) for k, v in params.items()}
    return A.get("lrp" if name.startswith("lrp") else name)(**params)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image Spearman correlation of two batches of BAM saliency maps (ties broken by position)."""

    def ranks(t):
        flat = A.to_saliency(t).flatten(1).float()
        return flat.argsort(dim=-1, stable=True).argsort(dim=-1).float()

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return float(((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)).mean())


def _time(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--n", type=int, default=8, help="images")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="few samples/steps (CPU smoke run)")
    ap.add_argument("--fidelity", action="store_true", help="bf16 vs fp32 Spearman of the maps")
    ap.add_argument("--only", nargs="*", default=None, help="method names to run")
    args = ap.parse_args()

    model = _model(args.arch).to(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, args.size, args.size, generator=g).to(args.device)
    target = model(x).argmax(1).detach()
    opts = ExecOptions(batch_size=args.batch_size)
    print(
        f"device={args.device} arch={args.arch} n={args.n} size={args.size} batch_size={args.batch_size}"
        f"{' quick' if args.quick else ''}"
    )
    print("| method | params | s total | ms / image | images / s | bf16 Spearman |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, params in METHODS.items():
        if args.only and name not in args.only:
            continue
        method = _method(name, params, args.quick)
        method.attribute(model, x[:1], target[:1], opts=opts)  # warm-up (cuDNN autotune, allocations)
        sec = _time(lambda m=method: m.attribute(model, x, target, opts=opts), args.device)
        fid = ""
        if args.fidelity and name not in ("lrp", "lrp_gamma_box", "guided_ig"):
            bf16 = ExecOptions(precision="bf16", batch_size=args.batch_size)
            seeds = torch.arange(args.n)
            ref = method.attribute(model, x, target, seeds=seeds, opts=opts)
            got = method.attribute(model, x, target, seeds=seeds, opts=bf16)
            fid = f"{_spearman(ref, got):.4f}"
        shown = ", ".join(f"{k}={v}" for k, v in method.params().items() if k not in ("mean", "std"))
        print(f"| {name} | {shown} | {sec:.3f} | {1000 * sec / args.n:.1f} | {args.n / sec:.2f} | {fid} |")

    if not args.only or "tcav" in args.only:
        layers = ("layer1", "layer2", "layer3", "layer4", "fc")
        m = max(4, args.n)
        sets = [torch.randn(m, 3, args.size, args.size, generator=g).to(args.device) for _ in range(4)]
        sec = _time(
            lambda: tcav(
                model,
                x,
                int(target[0]),
                sets[0],
                sets[1:],
                layers=layers,
                num_random=2,
                batch_size=args.batch_size,
            ),
            args.device,
        )
        print(f"| tcav | 5 layers, num_random=2, {m} images/set | {sec:.3f} | | | |")


if __name__ == "__main__":
    main()
