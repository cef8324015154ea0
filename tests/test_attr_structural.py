"""Structural attribution methods against hand-computed cases and reference libraries on the same input.

Oracles: captum (GuidedBackprop, LayerGradCam, GuidedGradCam), zennit (Gradient attributor with the same
composite), PAIR saliency 0.2.1 (GuidedIG, BlurIG) and scipy.ndimage (the blur). Each test says whether the
agreement is exact (same algorithm, float tolerance only) or a correlation, and why.
"""

from __future__ import annotations

import numpy as np
import pytest
import sampler_oracles as oracle
import torch
import torch.nn.functional as F
from torch import nn

from bamkit.attribution import paths as P
from bamkit.attribution import samplers as S
from bamkit.attribution.backprop import GuidedBackprop, guided_backprop, guided_backprop_smoothgrad
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.blur_ig import BlurIG, blur_ig, gaussian_blur
from bamkit.attribution.cam import (
    GradCAMSmoothGrad,
    GuidedGradCAM,
    GuidedGradCAMSmoothGrad,
    gradcam,
    guided_gradcam,
)
from bamkit.attribution.engine import run_methods
from bamkit.attribution.guided_ig import guided_ig
from bamkit.attribution.lrp import LRP, lrp
from bamkit.errors import ConfigError
from bamkit.testing.models import SmallCNN, images, tiny_resnet

# ------------------------------------------------------------------------------------------------ fixtures


class TwoLayer(nn.Module):
    """flatten -> W1 (no bias) -> ReLU -> W2: a hand-checkable guided-ReLU case (inputs (N,1,1,2))."""

    def __init__(self, functional: bool = False) -> None:
        super().__init__()
        self.l1 = nn.Linear(2, 4, bias=False)
        self.l2 = nn.Linear(4, 2, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.functional = functional
        with torch.no_grad():
            # hidden pre-activations at x = (1, 1): 3, 2, 0, -2
            self.l1.weight.copy_(torch.tensor([[1.0, 2.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -3.0]]))
            # d logit_0 / d hidden = 2, -1, 5, 4
            self.l2.weight.copy_(torch.tensor([[2.0, -1.0, 5.0, 4.0], [0.0, 1.0, 0.0, 0.0]]))

    def forward(self, x):
        h = self.l1(x.flatten(1))
        h = F.relu(h) if self.functional else self.relu(h)
        return self.l2(h)


class CamNet(nn.Module):
    """1×1 conv to two feature maps A1 = x, A2 = 1 − x, global average pool, linear head (hand-checkable CAM)."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(1, 2, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.feat.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.feat.bias.copy_(torch.tensor([0.0, 1.0]))
            self.head.weight.copy_(torch.tensor([[3.0, -1.0], [-1.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.pool(self.feat(x)).flatten(1))


@pytest.fixture(scope="module")
def resnet18():
    from torchvision.models import resnet18

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return resnet18(num_classes=5).eval()


def _pair_numpy_quantile(monkeypatch):
    """saliency 0.2.1 passes numpy 1's ``interpolation=`` to np.quantile; numpy 2 calls it ``method=``."""
    orig = np.quantile

    def quantile(*args, interpolation=None, **kw):
        if interpolation is not None:
            kw["method"] = interpolation
        return orig(*args, **kw)

    monkeypatch.setattr(np, "quantile", quantile)


def _pair_call_model(model):
    """A PAIR ``call_model_function``: NHWC numpy batch -> target-logit input gradients (NHWC)."""
    import saliency.core as sc

    def call(xb, call_model_args=None, expected_keys=None):
        xt = torch.from_numpy(np.ascontiguousarray(xb.transpose(0, 3, 1, 2))).requires_grad_(True)
        (g,) = torch.autograd.grad(model(xt)[:, call_model_args].sum(), xt)
        return {sc.INPUT_OUTPUT_GRADIENTS: g.numpy().transpose(0, 2, 3, 1)}

    return call


def _f64_cnn():
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, 3),
        )
        .double()
        .eval()
    )


# ------------------------------------------------------------------------------------------ guided backprop


@pytest.mark.parametrize("functional", [False, True])
def test_guided_backprop_hand_computed(functional):
    """Exact: guided ReLU passes gradient only where output > 0 AND incoming gradient > 0.

    Hidden units at x=(1,1): (3, 2, 0, −2) with incoming gradients (2, −1, 5, 4): only unit 0 passes, so
    GB = 2·(1, 2) = (2, 4) while the vanilla gradient is 2·(1,2) − 1·(1,1) = (1, 3). Holds for the in-place
    module ReLU and for F.relu alike.
    """
    model = TwoLayer(functional).eval()
    x = torch.ones(1, 1, 1, 2)
    gb = guided_backprop(model, x, torch.tensor([0]))
    torch.testing.assert_close(gb.flatten(), torch.tensor([2.0, 4.0]), rtol=0, atol=0)
    xg = x.clone().requires_grad_(True)
    (vanilla,) = torch.autograd.grad(model(xg)[0, 0], xg)
    torch.testing.assert_close(vanilla.flatten(), torch.tensor([1.0, 3.0]))


@pytest.mark.parametrize("which", ["small_cnn", "tiny_bottleneck", "resnet18"])
def test_guided_backprop_matches_captum(which, resnet18):
    """Exact (float tolerance): captum's ReLU backward hooks compute relu(relu'(x)·grad_out), the same rule.

    ``tiny_bottleneck`` and torchvision resnet18 reuse one in-place ReLU module several times per block
    (docs/methods.md), which our ReLU routing must handle.
    """
    from captum.attr import GuidedBackprop as CaptumGB

    model = {
        "small_cnn": SmallCNN(),
        "tiny_bottleneck": tiny_resnet(block="bottleneck"),
        "resnet18": resnet18,
    }[which]
    x = images(3, 32, seed=1)
    t = torch.tensor([0, 3, 1])
    ours = guided_backprop(model, x, t)
    with pytest.warns(UserWarning):
        ref = CaptumGB(model).attribute(x.clone().requires_grad_(True), target=t)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert ours.abs().max() > 0


def test_guided_backprop_leaves_nothing_after_exception():
    """After an exception in forward, ReLU gradients are ordinary again (no guided mode left active)."""

    class Boom(nn.Module):
        def forward(self, x):
            torch.relu(x)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        guided_backprop(Boom(), torch.ones(1, 1, 2, 2), torch.tensor([0]))
    x = torch.ones(3, requires_grad=True)
    (g,) = torch.autograd.grad(-torch.relu(x).sum(), x)  # guided ReLU would block these negative gradients
    torch.testing.assert_close(g, -torch.ones(3))


# --------------------------------------------------------------------------------------------------- GradCAM


def test_gradcam_hand_computed():
    """Exact: w = spatial mean of ∂logit/∂A = (3/4, −1/4) for class 0, so cam = ReLU(3/4·x − 1/4·(1 − x))
    = ReLU(x − 1/4); /max. For class 1, w = (−1/4, 1/4): cam = ReLU(1/4 − x/2) is all zero on x ≥ 1/2, and the
    result must be zeros, not NaN (PAIR 0.0.5 divides by zero there)."""
    model = CamNet().eval()
    x = torch.tensor([[0.0, 0.5], [1.0, 0.25]]).view(1, 1, 2, 2)
    cam = gradcam(model, x, torch.tensor([0]), layer="feat")
    expected = torch.tensor([[0.0, 0.25], [0.75, 0.0]]) / 0.75
    torch.testing.assert_close(cam.view(2, 2), expected)
    x1 = torch.tensor([[0.5, 0.75], [1.0, 0.6]]).view(1, 1, 2, 2)
    zero = gradcam(model, x1, torch.tensor([1]), layer="feat")
    assert torch.equal(zero, torch.zeros_like(zero))


def test_gradcam_matches_captum_layer4(resnet18):
    """Exact up to the /max: captum LayerGradCam(relu) + LayerAttribution.interpolate(bilinear, the same
    align_corners=False convention), divided by the low-resolution CAM maximum as BAM normalises before resizing."""
    from captum.attr import LayerAttribution, LayerGradCam

    x = images(3, 64, seed=2)
    t = torch.tensor([1, 3, 0])
    ours = gradcam(resnet18, x, t)
    low = LayerGradCam(resnet18, resnet18.layer4).attribute(x, target=t, relu_attributions=True)
    ref = LayerAttribution.interpolate(low, (64, 64), interpolate_mode="bilinear")
    ref = ref / low.amax(dim=(1, 2, 3), keepdim=True)
    assert ours.shape == (3, 1, 64, 64)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-6)


def test_guided_gradcam_matches_captum(resnet18):
    """Exact after rescaling: captum's GuidedGradCam multiplies GB by the *un-normalised* CAM; dividing it by the
    CAM maximum gives ours (GB ⊙ CAM/max)."""
    from captum.attr import GuidedGradCam, LayerGradCam

    x = images(2, 64, seed=3)
    t = torch.tensor([2, 4])
    ours = guided_gradcam(resnet18, x, t)
    with pytest.warns(UserWarning):
        ref = GuidedGradCam(resnet18, resnet18.layer4).attribute(
            x.clone().requires_grad_(True), target=t, interpolate_mode="bilinear"
        )
    peak = (
        LayerGradCam(resnet18, resnet18.layer4)
        .attribute(x, target=t, relu_attributions=True)
        .amax(dim=(1, 2, 3), keepdim=True)
    )
    torch.testing.assert_close(ours, (ref / peak).detach(), rtol=1e-5, atol=1e-7)


def test_gradcam_layer_errors():
    model = SmallCNN()
    with pytest.raises(ConfigError, match="no module 'featurs'.*did you mean 'features'"):
        gradcam(model, images(1, 16), torch.tensor([0]), layer="featurs")
    with pytest.raises(ConfigError, match=r"\(B,K,h,w\) activation"):
        gradcam(model, images(1, 16), torch.tensor([0]), layer="fc")


# ----------------------------------------------------------------------------------- smoothed and composite


def _per_sample(method, model, x, t, seeds, n_samples, sigma):
    """Mean of squared per-sample maps, computed one noisy sample at a time with the engine's sampler noise."""
    sampler = S.Gaussian(n_samples, sigma)
    out = []
    for j in range(len(x)):
        gen = torch.Generator().manual_seed(int(seeds[j]))
        noisy = torch.cat([b.inputs for b in oracle.parts(sampler, x[j : j + 1], [gen])])
        maps = torch.cat([method(model, noisy[i : i + 1], t[j : j + 1]) for i in range(n_samples)])
        out.append((maps**2).mean(0, keepdim=True))
    return torch.cat(out)


def test_guided_backprop_smoothgrad_is_mean_of_squares():
    """Exact (float tolerance): GB-SG = (1/n) Σ GB(x + ε_i)², with the same noise drawn one image at a time."""
    model = tiny_resnet(block="bottleneck")
    x, t, seeds = images(2, 32, seed=4), torch.tensor([1, 2]), torch.tensor([11, 12])
    ours = guided_backprop_smoothgrad(model, x, t, seeds=seeds, n_samples=4, opts=ExecOptions(batch_size=3))
    ref = _per_sample(guided_backprop, model, x, t, seeds, 4, 0.15)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-9)


def test_gradcam_smoothgrad_and_guided_gradcam_smoothgrad():
    """Exact: GC-SG = mean of squared per-sample normalised CAMs; GGC-SG = GB-SG ⊙ GC-SG with shared seeds."""
    model = tiny_resnet()
    x, t, seeds = images(2, 32, seed=5), torch.tensor([0, 4]), torch.tensor([3, 9])
    gc_sg = GradCAMSmoothGrad(n_samples=3).attribute(model, x, t, seeds=seeds)
    ref = _per_sample(lambda m, xi, ti: gradcam(m, xi, ti), model, x, t, seeds, 3, 0.15)
    torch.testing.assert_close(gc_sg, ref, rtol=1e-5, atol=1e-7)
    ggc_sg = GuidedGradCAMSmoothGrad(n_samples=3).attribute(model, x, t, seeds=seeds)
    gb_sg = guided_backprop_smoothgrad(model, x, t, seeds=seeds, n_samples=3)
    torch.testing.assert_close(ggc_sg, gb_sg * gc_sg)


def test_guided_gradcam_shares_the_guided_backprop_pass():
    """attribute_many semantics: GGC is built from the same GB and GC results requested alongside it."""
    model = tiny_resnet()
    x, t = images(2, 32, seed=6), torch.tensor([0, 1])
    res = run_methods(
        model,
        x,
        t,
        {"gb": GuidedBackprop(), "ggc": GuidedGradCAM(), "gc": GuidedGradCAM().parts()["gradcam"]},
    )
    torch.testing.assert_close(res["ggc"], res["gb"] * res["gc"])


# ------------------------------------------------------------------------------------------------------- LRP


def _zennit_reference(model, x, t, composite):
    from zennit.attribution import Gradient

    with Gradient(model, composite) as attributor:
        _, rel = attributor(x, attr_output=torch.eye(5)[t])
    return rel


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_lrp_matches_zennit_resnet(block):
    """Exact: zennit's own Gradient attributor with EpsilonPlusFlat + ResNetCanonizer on the same model; the
    model's parameters are bit-identical afterwards (canonizers removed)."""
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    model = tiny_resnet(block=block)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = images(2, 32, seed=7), torch.tensor([1, 3])
    ours = lrp(model, x, t)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ref = _zennit_reference(model, x, t, EpsilonPlusFlat(canonizers=[ResNetCanonizer()]))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-8)


def test_lrp_epsilon_gamma_box_matches_zennit():
    """Exact: EpsilonGammaBox with ZBox bounds normalise(0)/normalise(1) on a non-ResNet (BN-merging canonizer)."""
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonGammaBox

    model = SmallCNN()
    x, t = images(2, 16, seed=8), torch.tensor([0, 2])
    ours = lrp(model, x, t, composite="epsilon_gamma_box")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    comp = EpsilonGammaBox(
        low=(-mean / std).expand_as(x),
        high=((1 - mean) / std).expand_as(x),
        canonizers=[SequentialMergeBatchNorm()],
    )
    torch.testing.assert_close(ours, _zennit_reference(model, x, t, comp), rtol=1e-5, atol=1e-8)


def test_lrp_conservation_bias_free():
    """Axiom: with bias-free layers, z⁺/Flat/ε rules conserve relevance, so with the seed scaled by the logit
    the input relevances sum to the target logit (up to the 1e-6 stabilisers)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4, bias=False),
    ).eval()
    x = images(3, 12, seed=9)
    logits = model(x).detach()
    t = logits.argmax(1)
    rel = lrp(model, x, t, scale_by_logit=True)
    torch.testing.assert_close(
        rel.sum(dim=(1, 2, 3)), logits.gather(1, t[:, None]).squeeze(1), rtol=1e-4, atol=1e-6
    )


def test_lrp_restores_model_after_exception():
    """Canonizers (BN merged into convs) and rule hooks are removed even when the forward raises."""

    class Failing(SmallCNN):
        def forward(self, x):
            self.features(x)
            raise RuntimeError("boom")

    model = Failing()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        lrp(model, images(1, 16), torch.tensor([0]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_lrp_rejects_unknown_composite():
    with pytest.raises(ConfigError, match="composite 'epsilon_plus_flt' is not one of"):
        LRP(composite="epsilon_plus_flt")


# ------------------------------------------------------------------------------------------ Guided IG, Blur IG


@pytest.mark.parametrize("max_dist,fraction", [(0.1, 0.25), (0.02, 0.5), (1.0, 0.1)])
def test_guided_ig_matches_pair(monkeypatch, max_dist, fraction):
    """Exact (float64, 1e-12): the same algorithm as PAIR's GuidedIG.GetMask, here batched over three images."""
    import saliency.core as sc

    _pair_numpy_quantile(monkeypatch)
    model = _f64_cnn()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    t = torch.tensor([0, 2, 1])
    ours = guided_ig(model, x, t, n_steps=12, fraction=fraction, max_dist=max_dist, baseline="mean")
    call = _pair_call_model(model)
    for i in range(3):
        ref = sc.GuidedIG().GetMask(
            x[i].numpy().transpose(1, 2, 0),
            call,
            call_model_args=int(t[i]),
            x_steps=12,
            fraction=fraction,
            max_dist=max_dist,
        )
        torch.testing.assert_close(ours[i], torch.from_numpy(ref.transpose(2, 0, 1)), rtol=1e-9, atol=1e-12)


def test_guided_ig_without_deviation_is_left_riemann_ig():
    """Exact (float tolerance): with max_dist = 0 every feature sits at α = t/T after step t, so Guided IG is IG
    with the left Riemann rule — captum's IntegratedGradients(method="riemann_left") on the same baseline.
    An input equal to its baseline gets zeros."""
    from captum.attr import IntegratedGradients

    model = _f64_cnn()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    t = torch.tensor([1, 2])
    ours = guided_ig(model, x, t, n_steps=10, baseline="black", max_dist=0.0)
    black = P.resolve_baseline("black", x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ref = IntegratedGradients(model).attribute(
        x, baselines=black, target=t, n_steps=10, method="riemann_left"
    )
    # captum builds its step sizes 1/T in float32 (relative error ~1.5e-8), hence rtol 1e-7, not 1e-12
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)
    zero = guided_ig(model, black.clone(), t, n_steps=3, baseline="black")
    assert torch.equal(zero, torch.zeros_like(zero))


@pytest.mark.parametrize("mode", ["constant", "reflect", "mirror", "nearest", "wrap"])
def test_blur_matches_scipy(mode):
    """Exact: blur matrices reproduce scipy.ndimage.gaussian_filter on H, W of CHW (σ from sub-pixel to beyond
    the image size), including the truncation at int(4σ + 0.5) and a fixed radius."""
    from scipy import ndimage

    img = torch.randn(3, 9, 13, dtype=torch.float64)
    for sigma in (0.01, 0.4, 1.7, 6.0, 50.0):
        ref = ndimage.gaussian_filter(img.numpy().transpose(1, 2, 0), sigma=[sigma, sigma, 0], mode=mode)
        torch.testing.assert_close(
            gaussian_blur(img, sigma, mode), torch.from_numpy(ref.transpose(2, 0, 1)), rtol=0, atol=1e-12
        )
    ref = ndimage.gaussian_filter(
        img.numpy().transpose(1, 2, 0), sigma=[3, 3, 0], mode=mode, radius=[2, 2, 0]
    )
    torch.testing.assert_close(
        gaussian_blur(img, 3.0, mode, radius=2), torch.from_numpy(ref.transpose(2, 0, 1)), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("sqrt", [False, True])
def test_blur_ig_matches_pair(sqrt):
    """Exact (float64): PAIR's BlurIG.GetMask with batch_size=1 (with sqrt spacing and larger PAIR batches PAIR
    uses the last step's width for the whole batch; we use each step's own)."""
    import saliency.core as sc

    model = _f64_cnn()
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    t = torch.tensor([2, 0])
    ours = blur_ig(model, x, t, n_steps=15, max_sigma=8.0, sqrt=sqrt, opts=ExecOptions(batch_size=7))
    call = _pair_call_model(model)
    for i in range(2):
        ref = sc.BlurIG().GetMask(
            x[i].numpy().transpose(1, 2, 0),
            call,
            call_model_args=int(t[i]),
            steps=15,
            max_sigma=8.0,
            sqrt=sqrt,
            batch_size=1,
        )
        torch.testing.assert_close(ours[i], torch.from_numpy(ref.transpose(2, 0, 1)), rtol=1e-9, atol=1e-13)


def test_blur_ig_validates():
    with pytest.raises(ConfigError, match="mode 'reflect101' is not one of"):
        BlurIG(mode="reflect101")
    with pytest.raises(ConfigError, match="n_steps must be an integer"):
        BlurIG(n_steps=0)


# ------------------------------------------------------------------------------------------------------ GPU

GPU_CASES = [
    ("guided_backprop", {}),
    # σ = 0: per-device generators draw different noise, so the smoothed forms are compared without noise
    ("guided_backprop_smoothgrad", {"n_samples": 2, "sigma": 0.0}),
    ("gradcam", {}),
    ("gradcam_smoothgrad", {"n_samples": 2, "sigma": 0.0}),
    ("guided_gradcam", {}),
    ("guided_gradcam_smoothgrad", {"n_samples": 2, "sigma": 0.0}),
    ("lrp", {}),
    ("lrp", {"composite": "epsilon_gamma_box"}),
    ("blur_ig", {"n_steps": 10}),
    ("guided_ig", {"n_steps": 10}),
]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,params", GPU_CASES)
def test_cuda_matches_cpu(name, params):
    """CPU == CUDA up to float32 summation order (fp32 means TF32 off in the engine's forward context)."""
    import copy

    import bamkit.attribution as A

    model = tiny_resnet(block="bottleneck")
    x, t = images(2, 32, seed=10), torch.tensor([1, 4])
    cpu = A.attribute(model, x, t, name, **params)
    gpu = A.attribute(copy.deepcopy(model).cuda(), x.cuda(), t.cuda(), name, **params)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4 * float(cpu.abs().max()))
