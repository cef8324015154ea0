"""Throughput of the metrics that call the model (RCAP, DAUC/IAUC, AUPC) and of the pure reductions.

Random-initialised torchvision ResNet-50 (no weights are downloaded; throughput does not depend on them) at the
paper's 224 px, random images and maps. Prints one Markdown table row per metric.

    .venv/bin/python bench/bench_metrics.py --device cuda --n 64 --batch-size 256
    .venv/bin/python bench/bench_metrics.py --device cpu --n 4 --size 64 --arch small
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import bamkit.metrics as M


def _model(arch: str, classes: int) -> nn.Module:
    if arch == "resnet50":
        from torchvision.models import resnet50

        return resnet50(num_classes=classes)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str, repeat: int) -> float:
    fn()  # warm-up (cudnn autotune, allocator)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, default=16, help="images per call")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--arch", choices=["resnet50", "small"], default="resnet50")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--skip-aupc", action="store_true", help="AUPC runs 30 × 50 forwards per image")
    a = p.parse_args()

    torch.manual_seed(0)
    dev = a.device
    model = _model(a.arch, 10).to(dev).eval()
    x = torch.randn(a.n, 3, a.size, a.size, device=dev)
    sal = torch.rand(a.n, a.size, a.size, device=dev)
    heat = torch.randn(a.n, a.size, a.size, device=dev)
    t = torch.randint(0, 10, (a.n,), device=dev)
    masks = torch.rand(a.n, a.size, a.size, device=dev) > 0.8
    bs = a.batch_size

    rows = []

    def add(name, forwards, fn):
        sec = _time(fn, dev, a.repeat)
        rows.append((name, forwards, sec, a.n / sec, forwards / sec if forwards else float("nan")))

    add("rcap (5 steps)", 5 * a.n, lambda: M.rcap(model, x, sal, t, batch_size=bs))
    add("deletion gag10", 10 * a.n, lambda: M.deletion_auc(model, x, sal, t, batch_size=bs))
    add("insertion gag10", 10 * a.n, lambda: M.insertion_auc(model, x, sal, t, batch_size=bs))
    add(
        "deletion rise",
        (a.size + 1) * a.n,
        lambda: M.deletion_auc(model, x, sal, t, protocol="rise", batch_size=bs),
    )
    if not a.skip_aupc:
        add("aupc (30×50)", 30 * 50 * a.n, lambda: M.aupc(model, x, heat, t, batch_size=bs))
    add("region_attribution", 0, lambda: M.region_attribution(sal, masks))
    add("logcosh_dice+mae", 0, lambda: (M.logcosh_dice(sal, masks), M.sqrt_mae(sal, masks)))
    flat = torch.randn(3 * a.size * a.size, device=dev)
    flat2 = flat + torch.randn_like(flat)
    sec = _time(lambda: M.kendall_tau(flat, flat2), dev, a.repeat)
    rows.append((f"kendall τ-b (n={flat.numel()})", 0, sec, 1 / sec, float("nan")))
    sec = _time(lambda: M.mutual_information(torch.rand_like(x), sal), dev, a.repeat)
    rows.append(("mutual_information", 0, sec, a.n / sec, float("nan")))

    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu"
    print(f"device {name}, arch {a.arch}, {a.size}px, n={a.n}, batch_size={bs}")
    print("| metric | forwards | s/call | images/s | forwards/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.1f} | {r[4]:.0f} |")


if __name__ == "__main__":
    main()
