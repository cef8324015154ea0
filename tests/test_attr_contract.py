"""The contract every registered map method keeps (captum's hook-removal tests, torchvision's invariants).

Parametrised over ``names()`` minus concept methods (TCAV), with sample counts shrunk to keep the run fast:
inputs unchanged; eval mode for the call and the caller's mode and ``requires_grad`` flags restored; no hooks,
swapped modules or torch-function modes left behind, also after an exception inside the model's forward; output
shape/dtype/device; determinism for given seeds; a batch gives the maps of its images one by one; and
``attribute_many`` (shared samples) gives what each method gives alone.
CPU == CUDA and bf16 fidelity are marked ``gpu``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.modules.module as module_globals
from torch import nn

import bamkit.attribution as A
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.engine import fidelity
from bamkit.attribution.postprocess import to_saliency
from bamkit.testing.models import images, tiny_resnet

SHRINK = {"n_samples": 3, "n_steps": 4, "max_iter": 2}


def map_methods() -> list[str]:
    return [n for n in A.names() if getattr(A.get(n), "output", "input") != "concept"]


def small_params(name: str) -> dict:
    """The method's sample counts shrunk (the contract does not depend on them)."""
    defaults = A.defaults(name)
    params = {k: v for k, v in SHRINK.items() if k in defaults and defaults[k] is not inspect.Parameter.empty}
    if name == "reversed":
        params["params"] = {"n_samples": 3}
    return params


class Raising(nn.Module):
    """Wraps a module; raises inside forward when armed (an exception in the middle of the model)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.armed = inner, False

    def forward(self, x):
        if self.armed:
            raise RuntimeError("boom")
        return self.inner(x)


def make_model() -> nn.Module:
    model = tiny_resnet(classes=5, width=4, seed=3)
    model.fc = Raising(model.fc)
    return model


def snapshot(model: nn.Module) -> dict:
    return {
        "training": [(n, m.training) for n, m in model.named_modules()],
        "grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "types": [(n, type(m)) for n, m in model.named_modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "format": [p.is_contiguous() for p in model.parameters()],
    }


def assert_clean(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["grad"] == before["grad"]
    assert after["types"] == before["types"], "modules were swapped and not restored"
    assert after["format"] == before["format"], "memory format not restored"
    for k, v in before["state"].items():
        torch.testing.assert_close(after["state"][k], v, rtol=0, atol=0, msg=k)
    for n, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(m, attr), f"{attr} left on {n or 'model'}"
    for g in (
        "_global_forward_hooks",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
    ):
        assert not getattr(module_globals, g), f"{g} left behind"
    assert not torch._C._is_torch_function_mode_enabled(), "a TorchFunctionMode was left active"


def _setup():
    model = make_model()
    model.train()  # the caller's mode: must come back
    model.layer1.requires_grad_(False)  # a mix of flags: must come back
    x = images(2, size=24, seed=1)
    t = torch.tensor([0, 4])
    return model, x, t


@pytest.fixture(scope="module")
def shared() -> dict:
    """Every map method from one ``attribute_many`` call (samples shared where possible)."""
    model, x, t = _setup()
    specs = {n: {"name": n, **small_params(n)} for n in map_methods()}
    return A.attribute_many(model, x, t, specs, seeds=torch.tensor([10, 11]))


@pytest.mark.parametrize("name", map_methods())
def test_contract(name, shared):
    model, x, t = _setup()
    before = snapshot(model)
    x0 = x.clone()
    seeds = torch.tensor([10, 11])
    params = small_params(name)
    out = A.attribute(model, x, t, name, seeds=seeds, **params)
    assert torch.equal(x, x0) and not x.requires_grad, "inputs were modified"
    assert_clean(model, before)
    kind = A.get(name).output
    expected = (2, 3, 24, 24) if kind == "input" else (2, 1, 24, 24)
    assert tuple(out.shape) == expected and out.dtype == torch.float32 and out.device == x.device
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0, "an all-zero attribution on a generic input"
    again = A.attribute(model, x, t, name, seeds=seeds, **params)
    torch.testing.assert_close(again, out, rtol=0, atol=0, msg="not deterministic for given seeds")
    scale = float(out.abs().max())
    torch.testing.assert_close(shared[name], out, rtol=1e-5, atol=1e-6 * scale, msg="attribute_many != alone")
    for j in (1,):  # batch == per-sample with the same seeds (image 1: a different position in the batch)
        one = A.attribute(model, x[j : j + 1], t[j : j + 1], name, seeds=seeds[j : j + 1], **params)
        torch.testing.assert_close(one, out[j : j + 1], rtol=1e-4, atol=1e-5 * scale, msg=f"image {j}")
    if A.get(name).stochastic:
        other = A.attribute(model, x, t, name, seeds=seeds + 100, **params)
        assert not torch.allclose(other, out), "a stochastic method ignored its seeds"


@pytest.mark.parametrize("name", [n for n in map_methods() if n != "random"])  # random never runs the model
def test_no_leftovers_after_exception_in_forward(name):
    model, x, t = _setup()
    before = snapshot(model)
    model.fc.armed = True
    with pytest.raises(RuntimeError, match="boom"):
        A.attribute(
            model,
            x,
            t,
            name,
            seeds=torch.tensor([1, 2]),
            opts=ExecOptions(channels_last=True),
            **small_params(name),
        )
    model.fc.armed = False
    assert_clean(model, before)


@pytest.mark.parametrize("name", ["vanilla_gradient", "smoothgrad", "integrated_gradients"])
def test_channels_last_matches_contiguous(name):
    model, x, t = _setup()
    ref = A.attribute(model, x, t, name, seeds=torch.tensor([1, 2]), **small_params(name))
    cl = A.attribute(
        model,
        x,
        t,
        name,
        seeds=torch.tensor([1, 2]),
        opts=ExecOptions(channels_last=True),
        **small_params(name),
    )
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_bf16_fidelity_report_cpu():
    """bf16 autocast changes the maps a little, not their ranking (fidelity ≈ 1), and the report says so."""
    model, x, t = _setup()
    methods = {n: A.make(n, **small_params(n)) for n in ("vanilla_gradient", "integrated_gradients")}
    fid = fidelity(model, x, t, methods, ExecOptions(precision="bf16"))
    assert set(fid) == set(methods)
    assert all(0.8 < v <= 1.0 for v in fid.values()), fid
    assert fidelity(model, x, t, methods, ExecOptions())["vanilla_gradient"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------ GPU

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("name", map_methods())
def test_cpu_equals_cuda(name):
    model, x, t = _setup()
    model.eval()
    params = small_params(name)
    if name == "reversed":
        # wrap a deterministic method so that everything but the seeded shuffle must agree
        params = {"method": "vanilla_gradient"}
    seeds = torch.tensor([1, 2])
    cpu = A.attribute(model, x, t, name, seeds=seeds, **params)
    gpu_model = make_model().cuda()
    gpu_model.load_state_dict(model.state_dict())
    gpu = A.attribute(gpu_model, x.cuda(), t.cuda(), name, seeds=seeds, **params)
    assert gpu.device.type == "cuda"
    again = A.attribute(gpu_model, x.cuda(), t.cuda(), name, seeds=seeds, **params)
    torch.testing.assert_close(again, gpu, rtol=1e-5, atol=1e-6 * float(gpu.abs().max()))
    if name == "random":
        # the map *is* the generator's output and CUDA draws differ from CPU draws for the same seed:
        # compare the distribution (uniform on [0, 1]) instead
        for m in (cpu, gpu.cpu()):
            assert 0.0 <= float(m.min()) and float(m.max()) <= 1.0
            assert abs(float(m.mean()) - 0.5) < 0.05 and abs(float(m.std()) - 12**-0.5) < 0.05
    elif name == "reversed":
        # a seeded permutation of the wrapped map: same multiset of values, same untouched top fraction
        a, b = cpu.flatten(1), gpu.cpu().flatten(1)
        torch.testing.assert_close(a.sort(1).values, b.sort(1).values, rtol=1e-3, atol=1e-5)
        top = a >= a.quantile(0.97, dim=1, keepdim=True)
        torch.testing.assert_close(a[top], b[top], rtol=1e-3, atol=1e-5)
    elif A.get(name).stochastic:
        # CUDA and CPU generators give different noise for the same seed: compare the maps' ranking loosely
        rho = fidelity_rho(cpu, gpu.cpu())
        assert rho > 0.3, rho
    else:
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4 * float(cpu.abs().max()))


def fidelity_rho(a: torch.Tensor, b: torch.Tensor) -> float:
    from bamkit.attribution.engine import spearman

    return float(spearman(to_saliency(a, "abs_minmax"), to_saliency(b, "abs_minmax")).mean())


@pytest.mark.gpu
@cuda
def test_bf16_and_compile_fidelity_cuda():
    model = tiny_resnet(classes=5, width=8, seed=3).cuda()
    x = images(8, size=32, seed=2).cuda()
    t = model(x).argmax(1)
    methods = {
        n: A.make(n, **small_params(n)) for n in ("vanilla_gradient", "smoothgrad", "integrated_gradients")
    }
    for opts in (
        ExecOptions(precision="bf16"),
        ExecOptions(precision="bf16", channels_last=True),
        ExecOptions(precision="tf32"),
    ):
        fid = fidelity(model, x, t, methods, opts)
        assert all(v > 0.9 for v in fid.values()), (opts, fid)


@pytest.fixture(scope="module")
def demo_net():
    """The demo's architecture with its real ImageNet weights, on a real photo (scikit-image's chelsea)."""
    from skimage import data

    from bamkit.models import preprocess_for
    from bamkit.nets import efficientnet_lite as lite

    net = lite.EfficientNetLite0()  # with its ImageNet head: the photo's own class is the target
    net.load_state_dict(lite.imagenet_state_dict(), strict=True)
    net.eval()
    img = torch.from_numpy(data.chelsea()[None])  # (1, H, W, 3) uint8
    x = preprocess_for("efficientnet_lite0", 80)(torch.cat([img, img.flip(2)]))
    return net, x


@pytest.mark.parametrize("name", map_methods())
def test_every_method_works_on_the_demo_architecture(demo_net, name):
    """EfficientNet-Lite0 (ReLU6, depthwise convolutions, no residual downsampling): every registered map method
    gives finite, non-trivial maps of the input's size — Guided Backprop through ReLU6, GradCAM at the
    architecture's own layer, LRP with its canonizer."""
    net, x = demo_net
    with torch.no_grad():
        target = net(x).argmax(1)
    out = A.make(name, **small_params(name)).attribute(net, x, target, seeds=torch.tensor([1, 2]))
    assert out.shape[0] == 2 and out.shape[-2:] == x.shape[-2:]
    assert torch.isfinite(out).all()
    assert (out.abs().flatten(1).amax(1) > 0).all(), "an all-zero map on a real photo"
