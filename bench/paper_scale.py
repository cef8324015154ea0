"""How long the paper's evaluation takes: the evaluate stage against the raw input-gradient step, one process.

The paper scale is 42,200 image-model pairs (MCS 10k images x f_o and f_s, IDR 10k x 2, IIR 100 x 2, relative
MCS 200 x 10 models). This script times, in one process and on one device:

1. the raw step: forward + backward to the input of the architecture, at the suite's sample batch size and
   execution settings (bf16 + channels_last + torch.compile on CUDA by default), in gradient evaluations/s,
   measured before and after the evaluate runs (the ratio uses the faster: a conservative figure);
2. bamkit's ``evaluate()`` on the shipped paper suite (its methods and sample counts), MCS scenario on
   ``--images`` planted images x f_o and f_s: two random-weight networks of the architecture whose logit 0
   carries a large bias, so that the planted labels (80 % class 0) count as correctly classified. A warm-up
   run first (compilation, allocator), then the timed one into a fresh folder (no cache hits);
3. the gradient evaluations one image-model pair costs with that suite (shared samples counted once).

It prints evaluate's gradient evals/s, the ratio to the raw step, the projected hours for 42,200 pairs, the
peak memory and the attribution cache's bytes per image and method (payload and file), and the cache projected
for 42,200 pairs (the evaluate stage checks the disk for it before the first map).

Usage:
    python bench/paper_scale.py --device cuda                       # ResNet-50, 128 px stored, 224 px input
    python bench/paper_scale.py --device cpu                        # smoke: resnet18 at 32 px, 8 images
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

PAPER_PAIRS = 42_200


def _models(arch: str, size: int, device: str, roles=("f_o", "f_s")) -> dict:
    from bamkit.classes import BAM_OBJECTS, BAM_SCENES
    from bamkit.models import ClassifierMeta, build_network, preprocess_for

    out = {}
    for i, role in enumerate(roles):
        torch.manual_seed(i)
        net = build_network(arch, 10, weights=None)
        with torch.no_grad():
            net.fc.bias[0] += 1e3  # the planted labels are mostly class 0: correctly classified pairs
        net.eval().to(device)
        names = BAM_OBJECTS if role == "f_o" else BAM_SCENES
        meta = ClassifierMeta(
            name=role,
            arch=arch,
            class_names=tuple(names),
            label_field="object_label" if role == "f_o" else "scene_label",
            train_set="obj_scene",
            preprocess=preprocess_for(arch, size),
            data_hash="planted",
            checkpoint_hash=f"bench-{arch}-{role}-{i}",
        )
        out[role] = (net, meta)
    return out


def raw_step(
    model: torch.nn.Module, size: int, batch: int, opts, device: str, seconds: float = 10.0
) -> float:
    """Gradient evaluations/s of the bare forward + backward to the input, with the engine's settings."""
    from bamkit.attribution.forward import forward_context

    x = torch.randn(batch, 3, size, size, device=device)
    t = torch.zeros(batch, dtype=torch.long, device=device)
    n, t0 = 0, None
    with forward_context(model, opts, key=("bench-raw",)) as fwd:
        for i in range(10_000):
            xi = x.detach().requires_grad_(True)
            out = fwd(xi)
            (g,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), xi)
            if i == 2:  # after compilation and warm-up
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            elif i > 2:
                n += batch
                if time.perf_counter() - t0 > seconds:
                    break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def evals_per_pair(suite) -> int:
    """Model passes one image-model pair costs with this suite: every method's kernel evaluations (shared
    samples once, :func:`bamkit.attribution.engine.samples_per_image`) plus the prediction's forward."""
    from bamkit.attribution.engine import samples_per_image
    from bamkit.evaluate.methods import build

    return samples_per_image({m.label: build(m) for m in suite.map_methods()}) + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--suite", default="evaluate/paper.yaml")
    ap.add_argument("--arch", help="default: resnet50 on CUDA, resnet18 on the CPU")
    ap.add_argument("--stored", type=int, help="stored image side (default 128 on CUDA, 32 on the CPU)")
    ap.add_argument("--size", type=int, help="model input side (default 224 on CUDA, 32 on the CPU)")
    ap.add_argument("--images", type=int, help="MCS images per model (default 256 on CUDA, 8 on the CPU)")
    ap.add_argument("--sample-batch", type=int, help="override the suite's sample_batch_size")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    arch = args.arch or ("resnet50" if cuda else "resnet18")
    stored, size = args.stored or (128 if cuda else 32), args.size or (224 if cuda else 32)
    n_images = args.images or (256 if cuda else 8)

    from bamkit.attribution.base import ExecOptions
    from bamkit.evaluate import evaluate, load_suite
    from bamkit.paths import shipped
    from bamkit.testing.evaluate import write_planted_file

    tmp = Path(tempfile.mkdtemp(prefix="bamkit-paper-scale-"))
    try:
        data = write_planted_file(tmp / "planted.h5", n_pairs=max(2 * n_images, 16), size=stored)
        suite = load_suite(shipped(args.suite), data=data, models=tmp)
        e = suite.execution
        if args.sample_batch:
            e = replace(e, sample_batch_size=args.sample_batch)
        e = replace(e, device=args.device)
        sc = suite.scenarios
        suite = replace(
            suite,
            execution=e,
            methods=suite.map_methods(),  # TCAV scores sets, not images: outside the per-pair gradient budget
            metrics=("mcs",),
            scenarios=replace(sc, mcs=replace(sc.mcs, max_images=n_images, random_baseline=False)),
        )
        models = _models(arch, size, args.device)
        settings = e.decided_for(args.device)
        opts = ExecOptions(**settings, batch_size=e.sample_batch_size)

        per_pair = evals_per_pair(suite)
        raw = raw_step(models["f_o"][0], size, e.sample_batch_size, opts, args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        evaluate(suite, tmp / "warm", loaded_models=models)  # compilation, allocator, first-touch
        warm = time.perf_counter() - t0
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        evaluate(suite, tmp / "timed", loaded_models=models)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        # the raw step again: on a shared machine the rate drifts, and the ratio uses the faster of the two
        raw_after = raw_step(models["f_o"][0], size, e.sample_batch_size, opts, args.device)
        raw_before, raw = raw, max(raw, raw_after)
        summary = json.loads((tmp / "timed" / "summary.json").read_text())
        legs = sum(t["seconds"] for t in summary["timings"])
        pairs = n_images * len(models)
        rate = pairs * per_pair / legs  # gradient evals/s inside the timed legs (attributions + scores)
        cache_file = sum(p.stat().st_size for p in (tmp / "timed" / "cache").rglob("*") if p.is_file())
        cache = summary["cache_bytes"]  # the maps' payload (float16 at the input side + per-row fields)
        n_methods = len(suite.map_methods())
        fig = {
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "arch": arch,
            "stored_px": stored,
            "input_px": size,
            "execution": settings | {"sample_batch_size": e.sample_batch_size},
            "images_x_models": pairs,
            "gradient_evals_per_pair": per_pair,
            "raw_evals_per_s": raw,
            "raw_before_after": [raw_before, raw_after],
            "evaluate_evals_per_s": rate,
            "ratio_to_raw": rate / raw,
            "evaluate_seconds": dt,
            "legs_seconds": legs,
            "warmup_seconds": warm,
            "projected_hours_42200_pairs": PAPER_PAIRS * per_pair / rate / 3600,
            "limit_hours_at_raw_step": PAPER_PAIRS * per_pair / raw / 3600,
            "peak_memory_gib": (
                torch.cuda.max_memory_allocated()
                if cuda
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            )
            / 2**30,  # fmt: skip
            "cache_bytes_per_image_method": cache / (pairs * n_methods),
            "cache_file_bytes_per_image_method": cache_file / (pairs * n_methods),  # + HDF5 chunk overhead
            "projected_cache_gb_42200_pairs": cache / pairs * PAPER_PAIRS / 1e9,
            "fidelity": (summary.get("execution") or {}).get("fidelity"),
        }
        for k, v in fig.items():
            print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}")
        if args.json:
            Path(args.json).write_text(json.dumps(fig, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
