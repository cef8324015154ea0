"""Attribution engine throughput: per-method gradient evaluations per second against raw forward+backward, and
BAM's 12-method suite against captum running the same methods one by one with the same sample counts.

    .venv/bin/python bench/attribution.py --device cpu --size 64 --batch 8
    .venv/bin/python bench/attribution.py --device cuda --size 224 --batch 256 --precision bf16 --channels-last
    .venv/bin/python bench/attribution.py --device cuda --size 224 --batch 256 --precision bf16 --compile

Prints three Markdown tables: the raw baseline (input gradients/s of ``autograd.grad`` of the target logits at
the same precision, memory format, compilation and batch), each method's kernel evaluations per second and its
ratio to the baseline (target ≥ 0.95), and the suite's time per image, bamkit ``attribute_many`` vs captum
(target ≥ 2.5× faster). Weights are random (torchvision architecture, nothing downloaded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable

import torch
import torchvision

import bamkit.attribution as A
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.engine import SampledMethod, samples_per_image
from bamkit.attribution.forward import forward_context, precision_flags

BAM_SUITE = [
    "vanilla_gradient",
    "smoothgrad_sq",
    "guided_backprop",
    "guided_backprop_smoothgrad",
    "integrated_gradients",
    "ig_smoothgrad",
    "gradcam",
    "gradcam_smoothgrad",
    "guided_gradcam",
    "guided_gradcam_smoothgrad",
    "gradient_x_input",
    "smoothgrad_x_input",
]
THROUGHPUT = [
    "vanilla_gradient",
    "smoothgrad",
    "smoothgrad_sq",
    "vargrad",
    "guided_absolutegrad",
    "integrated_gradients",
    "ig_smoothgrad",
    "smooth_taylor",
    "feature_suppression",
    "guided_backprop",
    "gradcam",
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 1) -> float:
    """Seconds per call after one warm-up call (compilation, cuDNN autotuning)."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def build_model(arch: str, device: torch.device) -> torch.nn.Module:
    if arch == "tiny":
        from bamkit.testing.models import tiny_resnet

        model = tiny_resnet(classes=10, width=16, block="bottleneck")
    else:
        model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
    return model.to(device).eval()


def raw_rate(model, x, t, opts: ExecOptions, repeat: int) -> float:
    """Input gradients per second of plain forward+backward at the same options (the ceiling)."""
    for p in model.parameters():
        p.requires_grad_(False)

    def step():
        with forward_context(model, opts, ("input_gradient",)) as forward:
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(forward(xx).float().gather(1, t[:, None]).sum(), xx)
        return g

    return x.shape[0] / timed(step, x.device, repeat)


def method_rates(model, x, t, opts, names, params, repeat) -> list[dict]:
    rows = []
    for name in names:
        if name not in A.names():
            continue
        m = A.make(name, **params.get(name, {}))
        evals = samples_per_image({name: m}) if isinstance(m, SampledMethod) else None
        sec = timed(
            lambda m=m: A.attribute(model, x, t, m, seeds=torch.arange(len(x)), opts=opts), x.device, repeat
        )
        rows.append(
            {
                "method": name,
                "evals_per_image": evals,
                "seconds": sec,
                "evals_per_s": (evals * len(x) / sec) if evals else None,
            }
        )
    return rows


def captum_suite(
    model, layer, n_samples: int, n_steps: int, sigma_abs: float, batch: int
) -> dict[str, Callable]:
    """The BAM suite in captum, method by method, with the same sample counts (squared SmoothGrad wrapper)."""
    from captum import attr as C

    def nt(attribution, nt_type="smoothgrad_sq", **kw):
        return lambda x, t: C.NoiseTunnel(attribution).attribute(
            x,
            nt_type=nt_type,
            nt_samples=n_samples,
            nt_samples_batch_size=max(1, batch // len(x)),
            stdevs=sigma_abs,
            target=t,
            **kw,
        )

    base = {
        "baselines": None,
        "n_steps": n_steps,
        "method": "riemann_trapezoid",
        "internal_batch_size": batch,
    }

    def up(f):
        return lambda x, t: C.LayerAttribution.interpolate(f(x, t), x.shape[-2:], "bilinear")

    return {
        "vanilla_gradient": lambda x, t: C.Saliency(model).attribute(x, target=t, abs=False),
        "smoothgrad_sq": nt(C.Saliency(model), abs=False),
        "guided_backprop": lambda x, t: C.GuidedBackprop(model).attribute(x, target=t),
        "guided_backprop_smoothgrad": nt(C.GuidedBackprop(model)),
        "integrated_gradients": lambda x, t: C.IntegratedGradients(model).attribute(x, target=t, **base),
        "ig_smoothgrad": nt(C.IntegratedGradients(model), **base),
        "gradcam": up(
            lambda x, t: C.LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
        ),
        "gradcam_smoothgrad": up(nt(C.LayerGradCam(model, layer), relu_attributions=True)),
        "guided_gradcam": lambda x, t: C.GuidedGradCam(model, layer).attribute(x, target=t),
        "guided_gradcam_smoothgrad": nt(C.GuidedGradCam(model, layer)),
        "gradient_x_input": lambda x, t: C.InputXGradient(model).attribute(x, target=t),
        "smoothgrad_x_input": nt(C.InputXGradient(model), nt_type="smoothgrad"),
    }


def suite_params(n_samples: int, n_steps: int) -> dict[str, dict]:
    noise = {"n_samples": n_samples}
    return {
        "smoothgrad_sq": noise,
        "guided_backprop_smoothgrad": noise,
        "gradcam_smoothgrad": noise,
        "guided_gradcam_smoothgrad": noise,
        "smoothgrad_x_input": noise,
        "integrated_gradients": {"n_steps": n_steps},
        "ig_smoothgrad": {**noise, "n_steps": n_steps},
    }


def markdown(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:,.3g}" if isinstance(v, float) else ("—" if v is None else str(v))

    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:1)")
    p.add_argument("--arch", default="resnet50", help="torchvision architecture, or 'tiny' (bamkit.testing)")
    p.add_argument("--size", type=int, default=64, help="input side in pixels (paper: 224)")
    p.add_argument("--batch", type=int, default=8, help="images per call and engine batch size")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward + input gradient")
    p.add_argument("--n-samples", type=int, default=25, help="noise samples in the suite (BAM: 25)")
    p.add_argument("--n-steps", type=int, default=25, help="IG steps in the suite (BAM: 25)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--skip-captum", action="store_true")
    p.add_argument("--skip-methods", action="store_true")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--methods", nargs="*", help="restrict the per-method table to these names")
    p.add_argument(
        "--engine-batch", type=int, help="samples per forward/backward in bamkit (default: --batch)"
    )
    args = p.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(args.arch, device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        t = model(x).argmax(1)
    opts = ExecOptions(
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        batch_size=args.engine_batch or args.batch,
    )
    setting = (
        f"{args.arch} {args.size}px, batch {args.batch}, {args.precision}"
        f"{', channels_last' if args.channels_last else ''}{', compiled' if args.compile else ''}, "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}"
    )
    print(f"# bamkit attribution benchmark — {setting}\n")

    result: dict = {"setting": vars(args)}
    t0 = time.perf_counter()
    raw = raw_rate(model, x, t, opts, args.repeat)
    result["raw_input_gradients_per_s"] = raw
    print(
        f"raw forward+backward to the input: {raw:,.1f} input gradients/s "
        f"(measured in {time.perf_counter() - t0:.1f} s incl. warm-up/compile)\n"
    )

    params = suite_params(args.n_samples, args.n_steps)
    if not args.skip_methods:
        rows = method_rates(
            model,
            x,
            t,
            opts,
            [m for m in THROUGHPUT if not args.methods or m in args.methods],
            {
                **params,
                "vargrad": {"n_samples": args.n_samples},
                "smoothgrad": {"n_samples": args.n_samples},
                "guided_absolutegrad": {"n_samples": args.n_samples},
                "smooth_taylor": {"n_samples": args.n_samples},
                "feature_suppression": {"n_samples": args.n_samples},
            },
            args.repeat,
        )
        for r in rows:
            r["ratio_to_raw"] = r["evals_per_s"] / raw if r["evals_per_s"] else None
        result["methods"] = rows
        print("## Per-method kernel evaluations per second (ratio to raw; target ≥ 0.95)\n")
        print(markdown(rows, ["method", "evals_per_image", "evals_per_s", "ratio_to_raw", "seconds"]) + "\n")

    suite = [n for n in BAM_SUITE if n in A.names()]
    specs = {n: {"name": n, **params.get(n, {})} for n in suite}
    ours = timed(
        lambda: A.attribute_many(model, x, t, specs, seeds=torch.arange(len(x)), opts=opts),
        device,
        args.repeat,
    )
    eager = ExecOptions(batch_size=opts.batch_size)
    ours_fp32 = (
        ours
        if opts == eager
        else timed(
            lambda: A.attribute_many(model, x, t, specs, seeds=torch.arange(len(x)), opts=eager),
            device,
            args.repeat,
        )
    )
    n_evals = samples_per_image({n: A.make(n, **params.get(n, {})) for n in suite})
    row = {
        "suite": f"{len(suite)} methods",
        "bamkit_kernel_evals_per_image": n_evals,
        "bamkit_s_per_image": ours / len(x),
        "bamkit_fp32_eager_s_per_image": ours_fp32 / len(x),
    }
    if not args.skip_captum:
        flat = x.flatten(1)
        sigma_abs = float(0.15 * (flat.amax(1) - flat.amin(1)).mean())
        fns = captum_suite(model, model.layer4, args.n_samples, args.n_steps, sigma_abs, args.batch)
        per = {}
        # captum runs at the same numerics as bamkit's fp32/tf32 modes (PyTorch enables TF32 for cuDNN
        # convolutions by default, which would otherwise give captum a free 2x on Ampere+); against bf16
        # it runs at PyTorch's defaults, which is what a captum user gets.
        with contextlib.ExitStack() as stack:
            if args.precision in ("fp32", "tf32"):
                stack.enter_context(precision_flags(args.precision))
            for n in suite:
                per[n] = timed(lambda f=fns[n]: f(x.clone(), t), device, args.repeat)
        cap = sum(per.values())
        row.update(
            {"captum_s_per_image": cap / len(x), "speedup": cap / ours, "speedup_fp32_eager": cap / ours_fp32}
        )
        result["captum_per_method_s"] = per
    result["suite"] = row
    print(
        "## BAM 12-method suite, time per image (bamkit attribute_many vs captum method by method; "
        "target ≥ 2.5×)\n"
    )
    print(markdown([row], list(row)) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
