"""Agreement with the reference libraries on the same small torchvision-style ResNet and input.

* captum ``Saliency`` / ``InputXGradient``: deterministic, same maths -> exact (float64, 1e-10).
* captum ``IntegratedGradients`` with the same quadrature (``riemann_*``/``gausslegendre``) and baseline ->
  exact up to captum's float32 α grid (1e-7 relative).
* captum ``NoiseTunnel`` (smoothgrad, smoothgrad_sq, vargrad) on the *same noise tensor* (captum draws it from
  the global RNG; we re-draw it under the same seed and feed it to the engine through a fixed-noise sampler) ->
  exact; captum's VarGrad is the biased (1/n) variance, ours unbiased, so ours × (n−1)/n.
* PAIR saliency 0.2.1 (the library BAM used, docs/conventions.md#notation) ``IntegratedGradients`` = our ``bam_linspace`` rule, and
  ``GetSmoothedMask(magnitude=True)`` = our ``smoothgrad_sq`` on the same numpy noise, with PAIR's σ rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bamkit.attribution as A
from bamkit.attribution import paths as P
from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.engine import SampledMethod
from bamkit.attribution.kernels import InputGradient
from bamkit.errors import ConfigError
from bamkit.testing.models import images, tiny_resnet

captum_attr = pytest.importorskip("captum.attr")

TOL = {"rtol": 1e-9, "atol": 1e-11}


@pytest.fixture(scope="module")
def setup():
    model = tiny_resnet(classes=5, width=4).double()
    x = images(2, size=16).double()
    t = torch.tensor([1, 3])
    return model, x, t


class FixedNoise(S.ChunkSampler):
    """``x + noise[j*n:(j+1)*n]`` for image ``j`` (captum's repeat_interleave layout), weights 1/n."""

    stochastic = False

    def __init__(self, noise: torch.Tensor, n: int) -> None:
        self.noise, self.n = noise, n

    def key(self):
        return ("fixed_noise", id(self.noise))

    def n_evals(self):
        return self.n

    def parts(self, x, gens):
        for j in range(x.shape[0]):
            eps = self.noise[j * self.n : (j + 1) * self.n].to(x)
            yield S.SampleBatch(
                x[j : j + 1] + eps,
                torch.full((self.n,), j),
                torch.full((self.n,), 1.0 / self.n, dtype=x.dtype),
                -eps,
            )


class OnNoise(SampledMethod):
    """Our kernel and a reducer on a given noise tensor."""

    def __init__(self, noise, n, reducer):
        self._s, self._r = FixedNoise(noise, n), reducer

    def params(self):
        return {"noise": id(self._s.noise), "reducer": self._r.key()}

    def kernel(self):
        return InputGradient()

    def sampler(self):
        return self._s

    def reducer(self):
        return self._r


def test_saliency_and_input_x_gradient_exact(setup):
    model, x, t = setup
    sal = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(), target=t, abs=False)
    ixg = captum_attr.InputXGradient(model).attribute(x.clone().requires_grad_(), target=t)
    r = A.attribute_many(model, x, t, ["vanilla_gradient", "gradient_x_input"])
    torch.testing.assert_close(r["vanilla_gradient"], sal, **TOL)
    torch.testing.assert_close(r["gradient_x_input"], ixg, **TOL)


@pytest.mark.parametrize(
    "rule,captum_method",
    [
        ("trapezoid", "riemann_trapezoid"),
        ("left", "riemann_left"),
        ("right", "riemann_right"),
        ("middle", "riemann_middle"),
        ("gausslegendre", "gausslegendre"),
    ],
)
def test_integrated_gradients_same_rule(setup, rule, captum_method):
    model, x, t = setup
    base = P.resolve_baseline("black", x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).contiguous()
    ref = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=base, target=t, n_steps=9, method=captum_method
    )
    ours = A.attribute(model, x, t, "integrated_gradients", n_steps=9, rule=rule, baseline="black")
    if rule == "trapezoid":
        # captum's riemann_trapezoid puts n points on [0, 1] but uses steps of 1/n (halved at the ends), so its
        # weights sum to (n−1)/n and completeness is off by that factor; bamkit uses the true trapezoid rule
        ours = ours * (9 - 1) / 9
    # captum builds its α grid with float32 torch.linspace (≈1e-8 relative), bamkit in float64
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_same_noise(setup, nt_type):
    model, x, t = setup
    n, stdev = 6, 0.3
    torch.manual_seed(123)
    ref = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
        x.clone(), nt_type=nt_type, nt_samples=n, stdevs=stdev, target=t, abs=False
    )
    torch.manual_seed(123)  # captum's draw, repeated: one normal over the repeat_interleave'd batch
    noise = torch.normal(0, torch.tensor(stdev).repeat((x.shape[0] * n, *x.shape[1:]))).double()
    reducer = {"smoothgrad": R.Mean(), "smoothgrad_sq": R.MeanSquare(), "vargrad": R.Variance()}[nt_type]
    ours = OnNoise(noise, n, reducer).attribute(model, x, t)
    if nt_type == "vargrad":
        ours = (
            ours * (n - 1) / n
        )  # captum: E[g²] − E[g]² (biased); bamkit: unbiased (GAG reference, docs/methods.md)
    torch.testing.assert_close(ours, ref.double(), rtol=1e-7, atol=1e-9)


def _pair_call(model):
    from saliency.core.base import INPUT_OUTPUT_GRADIENTS

    def call(xb, call_model_args=None, expected_keys=None):
        xt = torch.as_tensor(np.asarray(xb), dtype=torch.float64).requires_grad_(True)
        tgt = call_model_args["target"]
        (g,) = torch.autograd.grad(model(xt)[:, tgt].sum(), xt)
        return {INPUT_OUTPUT_GRADIENTS: g.numpy()}

    return call


def test_pair_saliency_integrated_gradients_is_bam_linspace(setup):
    sal = pytest.importorskip("saliency.core")
    model, x, t = setup
    base = P.resolve_baseline("black", x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ours = A.attribute(model, x, t, "integrated_gradients", n_steps=7, rule="bam_linspace", baseline="black")
    for j in range(2):
        ref = sal.IntegratedGradients().GetMask(
            x[j].numpy(),
            _pair_call(model),
            {"target": int(t[j])},
            x_baseline=base[j].numpy(),
            x_steps=7,
            batch_size=7,
        )
        np.testing.assert_allclose(ours[j].numpy(), ref, rtol=1e-5, atol=1e-7)  # PAIR sums in float32


def test_pair_saliency_smoothgrad_magnitude_is_smoothgrad_sq(setup):
    sal = pytest.importorskip("saliency.core")
    model, x, t = setup
    n = 5
    for j in range(2):
        xj = x[j].numpy()
        np.random.seed(7)
        ref = sal.GradientSaliency().GetSmoothedMask(
            xj, _pair_call(model), {"target": int(t[j])}, stdev_spread=0.15, nsamples=n, magnitude=True
        )
        stdev = 0.15 * (xj.max() - xj.min())
        assert float(S.Gaussian(n, 0.15).scales(x[j : j + 1]).item()) == pytest.approx(stdev)
        np.random.seed(7)
        noise = torch.as_tensor(np.stack([np.random.normal(0, stdev, xj.shape) for _ in range(n)]))
        ours = OnNoise(noise, n, R.MeanSquare()).attribute(model, x[j : j + 1], t[j : j + 1])
        np.testing.assert_allclose(ours[0].numpy(), ref, rtol=1e-5, atol=1e-9)  # PAIR accumulates in float32


def test_captum_attribution_instance_as_method(setup):
    """A captum object passes straight through ``attribute``/``attribute_many`` (adapters.CaptumMethod); a
    layer method's (N,1,h,w) output is brought to the input resolution only when the entry says how, and then
    equals that interpolation of captum's own map."""
    model, x, t = setup
    sal = captum_attr.Saliency(model)
    r = A.attribute_many(model, x, t, {"captum": A.make(sal, abs=False), "vanilla_gradient": None})
    torch.testing.assert_close(r["captum"], r["vanilla_gradient"], **TOL)
    assert A.attribute(model, x, t, sal).min() >= 0  # captum's default abs=True passes through
    layer_gc = captum_attr.LayerGradCam(model, model.layer4)
    with pytest.raises(
        ConfigError, match=r"returned shape \(2, 1, 1, 1\) at another resolution.*upsample: bilinear"
    ):
        A.attribute(model, x, t, layer_gc)
    gc = A.attribute(model, x, t, layer_gc, upsample="nearest")
    small = layer_gc.attribute(x, target=t)
    torch.testing.assert_close(gc, small.expand(2, 1, 16, 16).to(gc.dtype), **TOL)


def test_captum_class_is_built_around_each_model(setup):
    """A captum class (as ``--method captum.attr:Saliency`` names it) is built around every model it is given:
    two models, two different maps, each equal to the instance built by hand; attribute() arguments pass."""
    model, x, t = setup
    other = tiny_resnet(classes=5, width=4, seed=7).double()
    m = A.make("captum.attr:Saliency", abs=False)
    for net in (model, other):
        torch.testing.assert_close(
            A.attribute(net, x, t, m), captum_attr.Saliency(net).attribute(x, target=t, abs=False), **TOL
        )
    occ = A.make("captum.attr:Occlusion", sliding_window_shapes=[3, 4, 4], strides=[3, 4, 4])
    ref = captum_attr.Occlusion(model).attribute(
        x, target=t, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4)
    )
    torch.testing.assert_close(A.attribute(model, x, t, occ), ref.to(torch.float64), **TOL)
